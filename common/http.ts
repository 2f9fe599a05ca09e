/**
 * The small HTTP server every emuv process has: /metrics (the injected registry), /healthz (the
 * process is alive) and /readyz (the given probe says ready).
 */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface HttpServerOptions {
  host: string;
  port: number;
  registry: Registry;
  ready: () => boolean;
  /** Extra JSON endpoints, e.g. /status. */
  json?: Record<string, () => unknown>;
}

export async function startHttpServer(o: HttpServerOptions): Promise<{ server: Server; port: number; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ok = o.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : 'not ready\n');
    } else if (path === '/metrics') {
      o.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': o.registry.contentType }).end(body),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    } else if (path && o.json?.[path]) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(o.json[path]())}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  return { server, port, close: () => new Promise((r) => server.close(() => r())) };
}

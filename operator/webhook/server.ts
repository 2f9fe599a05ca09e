/**
 * The webhook's HTTPS server: POST /mutate-pods, GET /healthz and /readyz. The decision is
 * `handle(body)`; this file only does HTTP, body limits and certificate hot-swap (setSecureContext).
 */
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errFields, type Logger } from '../../common/log.ts';
import type { HandlerResult } from './admission.ts';

/** The apiserver sends at most ~3 MiB (its request size limit); anything larger is refused. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

export interface WebhookMetrics {
  observe(result: 'allowed' | 'denied' | 'bad_request' | 'error', seconds: number): void;
}

export class WebhookServer {
  private server: Server | undefined;
  private tls: { certPem: string; keyPem: string };
  private readonly handle: (body: Buffer) => HandlerResult | Promise<HandlerResult>;
  private readonly ready: () => boolean;
  private readonly metrics: WebhookMetrics | undefined;
  private readonly log: Logger;

  constructor(deps: {
    tls: { certPem: string; keyPem: string };
    handle: (body: Buffer) => HandlerResult | Promise<HandlerResult>;
    ready?: () => boolean;
    metrics?: WebhookMetrics;
    logger: Logger;
  }) {
    this.tls = deps.tls;
    this.handle = deps.handle;
    this.ready = deps.ready ?? (() => true);
    this.metrics = deps.metrics;
    this.log = deps.logger;
  }

  async start(port: number, host = '0.0.0.0'): Promise<AddressInfo> {
    const server = createServer({ cert: this.tls.certPem, key: this.tls.keyPem, minVersion: 'TLSv1.2' }, (req, res) =>
      this.route(req, res),
    );
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    server.keepAliveTimeout = 30_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server.address() as AddressInfo;
  }

  /** New connections use the new certificate; open ones finish on the old. */
  updateCertificate(tls: { certPem: string; keyPem: string }): void {
    if (tls.certPem === this.tls.certPem && tls.keyPem === this.tls.keyPem) return;
    this.tls = tls;
    this.server?.setSecureContext({ cert: tls.certPem, key: tls.keyPem, minVersion: 'TLSv1.2' });
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeIdleConnections();
    });
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/healthz' && req.method === 'GET') return text(res, 200, 'ok');
    if (path === '/readyz' && req.method === 'GET') return this.ready() ? text(res, 200, 'ok') : text(res, 503, 'not ready');
    if (path !== '/mutate-pods') return text(res, 404, 'not found');
    if (req.method !== 'POST') return text(res, 405, 'method not allowed');
    const started = process.hrtime.bigint();
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        refused = true;
        text(res, 413, 'request body too large');
        this.metrics?.observe('bad_request', seconds(started));
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (refused) return;
      void this.answer(Buffer.concat(chunks), res, started);
    });
    req.on('error', (err) => this.log.warn('admission request failed', errFields(err)));
  }

  private async answer(body: Buffer, res: ServerResponse, started: bigint): Promise<void> {
    let result: HandlerResult;
    try {
      result = await this.handle(body);
    } catch (err) {
      // A bug in our code must not look like a denial: answer 500 and let failurePolicy decide.
      this.log.error('admission handler failed', errFields(err));
      this.metrics?.observe('error', seconds(started));
      return text(res, 500, 'internal error');
    }
    const json = JSON.stringify(result.body);
    res.writeHead(result.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
    res.end(json);
    const outcome = result.status !== 200 ? 'bad_request' : result.body.response.allowed ? 'allowed' : 'denied';
    this.metrics?.observe(outcome, seconds(started));
  }
}

function seconds(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

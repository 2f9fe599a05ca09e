/**
 * An HTTP server standing in for the kube-apiserver's Node endpoints: it records every request
 * (method, path, content type, JSON patch), refuses patches that are not application/json-patch+json,
 * applies add/remove operations to one Node, and lets a test change that Node behind the client's
 * back (as a kubelet re-registering the node does). Test code.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { JsonPatchOp, NodeView } from '../../plugin/agent/node-status.ts';

export interface Recorded {
  method: string;
  path: string;
  contentType: string | undefined;
  body: JsonPatchOp[] | null;
}

export class FakeApiServer {
  readonly nodeName: string;
  constructor(nodeName = 'gpu-node-1') {
    this.nodeName = nodeName;
    this.node.metadata.name = nodeName;
    this.node.metadata.labels['kubernetes.io/hostname'] = nodeName;
  }

  node: NodeView & { metadata: { name: string; labels: Record<string, string> } } = {
    metadata: { name: 'gpu-node-1', labels: { 'kubernetes.io/hostname': 'gpu-node-1' } },
    status: { capacity: { cpu: '8', memory: '32Gi' }, allocatable: { cpu: '8', memory: '31Gi' } },
  };
  requests: Recorded[] = [];
  failNext = 0;
  server: Server = createServer((req, res) => void this.handle(req, res));
  port = 0;

  async start() {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as { port: number }).port;
  }

  async handle(req: IncomingMessage, res: ServerResponse) {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const body = raw ? (JSON.parse(raw) as JsonPatchOp[]) : null;
    const path = req.url ?? '';
    this.requests.push({ method: req.method ?? '', path, contentType: req.headers['content-type'], body });
    if (this.failNext > 0) {
      this.failNext--;
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"kind":"Status","code":503}');
      return;
    }
    if (!path.startsWith(`/api/v1/nodes/${this.nodeName}`)) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"kind":"Status","code":404}');
      return;
    }
    if (req.method === 'PATCH') {
      if (req.headers['content-type'] !== 'application/json-patch+json') {
        res.writeHead(415).end();
        return;
      }
      this.apply(body!);
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ apiVersion: 'v1', kind: 'Node', ...this.node }));
  }

  /** A minimal RFC 6902 apply for add/remove on object members, enough to check the publisher's patches. */
  apply(ops: JsonPatchOp[]) {
    for (const op of ops) {
      const parts = op.path
        .split('/')
        .slice(1)
        .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
      let target: Record<string, unknown> = this.node as unknown as Record<string, unknown>;
      for (const p of parts.slice(0, -1)) target = target[p] as Record<string, unknown>;
      const last = parts.at(-1)!;
      if (op.op === 'add') target[last] = op.value;
      else if (op.op === 'remove') delete target[last];
    }
  }

  stop() {
    return new Promise<void>((r) => this.server.close(() => r()));
  }
}

/**
 * The node-status publisher against an HTTP server standing in for the kube-apiserver: it checks
 * the content type and the JSON patch each request carries, and keeps a Node that the test can
 * change behind the publisher's back (as a re-registering kubelet does).
 */
import { KubeConfig } from '@kubernetes/client-node';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nopLogger } from '../../common/log.ts';
import { waitUntil } from '../../test/helpers.ts';
import { createNodeApi } from './kube-node-api.ts';
import { labelPatch, NodeStatusPublisher, sanitizeLabelValue, statusPatch, type JsonPatchOp, type NodeView } from './node-status.ts';

interface Recorded {
  method: string;
  path: string;
  contentType: string | undefined;
  body: JsonPatchOp[] | null;
}

class FakeApiServer {
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
    if (!path.startsWith('/api/v1/nodes/gpu-node-1')) {
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

let api: FakeApiServer;
let publisher: NodeStatusPublisher | null;

beforeEach(async () => {
  api = new FakeApiServer();
  await api.start();
  publisher = null;
});
afterEach(async () => {
  publisher?.stop();
  await api.stop();
});

function newPublisher(resyncMs = 50) {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${api.port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'c', cluster: 'fake', user: 'u' }],
    currentContext: 'c',
  });
  publisher = new NodeStatusPublisher({ nodeName: 'gpu-node-1', api: createNodeApi(kc), logger: nopLogger, resyncMs });
  return publisher;
}

const desired = { vramVirtualBytes: 25232932864, labels: { 'emuv.io/gpu.count': '1', 'emuv.io/gpu.product': 'NVIDIA-GeForce-RTX-4060' } };

describe('node status publisher over HTTP', () => {
  it('JSON-patches capacity and allocatable on /status and the labels on the Node', async () => {
    await newPublisher().publish(desired);
    const patches = api.requests.filter((r) => r.method === 'PATCH');
    expect(patches).toEqual([
      {
        method: 'PATCH',
        path: '/api/v1/nodes/gpu-node-1/status',
        contentType: 'application/json-patch+json',
        body: [
          { op: 'add', path: '/status/capacity/emuv.io~1vram-virtual', value: '25232932864' },
          { op: 'add', path: '/status/allocatable/emuv.io~1vram-virtual', value: '25232932864' },
        ],
      },
      {
        method: 'PATCH',
        path: '/api/v1/nodes/gpu-node-1',
        contentType: 'application/json-patch+json',
        body: [
          { op: 'add', path: '/metadata/labels/emuv.io~1gpu.count', value: '1' },
          { op: 'add', path: '/metadata/labels/emuv.io~1gpu.product', value: 'NVIDIA-GeForce-RTX-4060' },
        ],
      },
    ]);
    expect(api.node.status!.capacity).toEqual({ cpu: '8', memory: '32Gi', 'emuv.io/vram-virtual': '25232932864' });
    expect(publisher!.healthy).toBe(true);
  });

  it('patches nothing when the Node already agrees', async () => {
    const p = newPublisher();
    await p.publish(desired);
    api.requests = [];
    await p.reconcile();
    expect(api.requests.map((r) => r.method)).toEqual(['GET']);
  });

  it('re-asserts the value after the kubelet zeroes it or the key vanishes', async () => {
    const p = newPublisher(50);
    await p.publish(desired);
    p.start();
    api.node.status!.capacity!['emuv.io/vram-virtual'] = '0';
    api.node.status!.allocatable!['emuv.io/vram-virtual'] = '0';
    await waitUntil(() => api.node.status!.capacity!['emuv.io/vram-virtual'] === '25232932864', 2000, 're-assert after zeroing');
    delete api.node.status!.capacity!['emuv.io/vram-virtual'];
    delete api.node.status!.allocatable!['emuv.io/vram-virtual'];
    await waitUntil(() => api.node.status!.allocatable!['emuv.io/vram-virtual'] === '25232932864', 2000, 're-assert after removal');
  });

  it('survives API errors and succeeds on the next pass', async () => {
    const p = newPublisher(50);
    api.failNext = 1;
    await p.publish(desired);
    expect(p.healthy).toBe(false);
    p.start();
    await waitUntil(() => p.healthy, 2000, 'recovery');
    expect(api.node.status!.capacity!['emuv.io/vram-virtual']).toBe('25232932864');
  });
});

describe('patch builders', () => {
  it('adds whole maps when the Node has none', () => {
    expect(statusPatch({ status: {} }, desired)).toEqual([
      { op: 'add', path: '/status/capacity', value: { 'emuv.io/vram-virtual': '25232932864' } },
      { op: 'add', path: '/status/allocatable', value: { 'emuv.io/vram-virtual': '25232932864' } },
    ]);
    expect(labelPatch({ metadata: {} }, desired)).toEqual([{ op: 'add', path: '/metadata/labels', value: desired.labels }]);
  });

  it('removes a stale product label when no GPU is offered any more', () => {
    const node = { metadata: { labels: { 'emuv.io/gpu.count': '1', 'emuv.io/gpu.product': 'X' } } };
    expect(labelPatch(node, { vramVirtualBytes: 0, labels: { 'emuv.io/gpu.count': '0' } })).toEqual([
      { op: 'add', path: '/metadata/labels/emuv.io~1gpu.count', value: '0' },
      { op: 'remove', path: '/metadata/labels/emuv.io~1gpu.product' },
    ]);
  });

  it.each([
    ['NVIDIA GeForce RTX 4060', 'NVIDIA-GeForce-RTX-4060'],
    ['NVIDIA H100 80GB HBM3', 'NVIDIA-H100-80GB-HBM3'],
    ['  (weird) name!  ', 'weird-name'],
    ['x'.repeat(80), 'x'.repeat(63)],
  ])('sanitises %j to a label value', (input, expected) => {
    expect(sanitizeLabelValue(input)).toBe(expected);
  });
});

/**
 * AgentApiServer: the kube-apiserver as one agent sees it — its own Node, that Node's EmuvNode and the
 * DaemonSets it looks up at SIGTERM, nothing else (the operator's stand-in, OperatorApiServer in
 * operator-apiserver.ts, is a generic object store with list and watch instead). It records every
 * request (method, path, content type, JSON patch), refuses Node patches that are not
 * application/json-patch+json and applies them all or nothing (422 for a member that is not there, as
 * the apiserver does), lets a test change the Node behind the client's back (as a kubelet
 * re-registering the node does), answers EmuvNode GET, status merge-patch and DELETE, and can leave
 * requests unanswered. Test code.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { JsonPatchOp } from '../../common/kube/json-patch.ts';
import { applyJsonPatch } from './json-patch.ts';
import type { NodeView } from '../../plugin/agent/node-status.ts';

export interface Recorded {
  method: string;
  path: string;
  contentType: string | undefined;
  body: JsonPatchOp[] | null;
}

export class AgentApiServer {
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
  /** This node's EmuvNode, or null when the operator has not created it. */
  emuvNode: {
    apiVersion: string;
    kind: string;
    metadata: { name: string; generation: number };
    spec: Record<string, unknown>;
    status?: Record<string, unknown>;
  } | null = null;
  /** DaemonSets by "<namespace>/<name>"; GET of any other answers 404. */
  daemonSets = new Map<string, { metadata: { name: string; namespace: string; deletionTimestamp?: string } }>();
  requests: Recorded[] = [];
  failNext = 0;
  /** Requests this matches are recorded and never answered (an apiserver that hangs). */
  stall: ((method: string, path: string) => boolean) | null = null;
  server: Server = createServer((req, res) => void this.handle(req, res));
  port = 0;

  async start() {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as { port: number }).port;
  }

  async handle(req: IncomingMessage, res: ServerResponse) {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const body = raw && req.headers['content-type'] === 'application/json-patch+json' ? (JSON.parse(raw) as JsonPatchOp[]) : null;
    const path = req.url ?? '';
    this.requests.push({ method: req.method ?? '', path, contentType: req.headers['content-type'], body });
    if (this.stall?.(req.method ?? '', path)) return;
    if (this.failNext > 0) {
      this.failNext--;
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"kind":"Status","code":503}');
      return;
    }
    if (path.startsWith(`/apis/emuv.io/v1alpha1/emuvnodes/${this.nodeName}`)) {
      this.handleEmuvNode(req, res, path, raw);
      return;
    }
    const ds = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/daemonsets\/([^/?]+)(\?.*)?$/.exec(path);
    if (ds && req.method === 'GET') {
      const found = this.daemonSets.get(`${ds[1]}/${ds[2]}`);
      if (found)
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ apiVersion: 'apps/v1', kind: 'DaemonSet', ...found }));
      else res.writeHead(404, { 'content-type': 'application/json' }).end('{"kind":"Status","code":404,"reason":"NotFound"}');
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
      try {
        this.apply(body!);
      } catch (err) {
        res
          .writeHead(422, { 'content-type': 'application/json' })
          .end(JSON.stringify({ kind: 'Status', code: 422, message: (err as Error).message }));
        return;
      }
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ apiVersion: 'v1', kind: 'Node', ...this.node }));
  }

  /** GET of the EmuvNode, merge-patch of its status subresource, and DELETE (what the agent does). */
  handleEmuvNode(req: IncomingMessage, res: ServerResponse, path: string, raw: string) {
    if (!this.emuvNode) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"kind":"Status","code":404,"reason":"NotFound"}');
      return;
    }
    if (req.method === 'DELETE') {
      if (path.split('?')[0] !== `/apis/emuv.io/v1alpha1/emuvnodes/${this.nodeName}`) {
        res.writeHead(405).end();
        return;
      }
      const gone = this.emuvNode;
      this.emuvNode = null;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(gone));
      return;
    }
    if (req.method === 'PATCH') {
      if (!path.endsWith('/status') || req.headers['content-type'] !== 'application/merge-patch+json') {
        res.writeHead(415).end();
        return;
      }
      const patch = JSON.parse(raw) as { status?: Record<string, unknown> };
      this.emuvNode.status = { ...this.emuvNode.status, ...patch.status };
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.emuvNode));
  }

  /** Applies a JSON Patch to the Node, all or nothing (the apiserver's semantics, test/fakes/json-patch.ts). */
  apply(ops: JsonPatchOp[]) {
    this.node = applyJsonPatch(this.node, ops);
  }

  /** Writes a kubeconfig that points at this server (plain HTTP, no credentials). */
  writeKubeconfig(path: string): void {
    writeFileSync(
      path,
      `apiVersion: v1\nkind: Config\nclusters: [{name: fake, cluster: {server: "http://127.0.0.1:${this.port}", insecure-skip-tls-verify: true}}]\n` +
        `users: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: fake, user: u}}]\ncurrent-context: c\n`,
    );
  }

  stop() {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeAllConnections(); // stalled requests too
    return closed;
  }
}

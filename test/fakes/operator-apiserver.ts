/**
 * OperatorApiServer: a small object store behind the kube-apiserver's REST paths, enough for the
 * operator's composition root (the agent's stand-in, AgentApiServer, serves one Node instead): list and
 * watch (chunked JSON lines), get, create (generateName), update with resourceVersion checks, JSON Patch
 * (refused with any other content type), status subresources, delete. Every request is recorded.
 * Test code; the real apiserver tests live in test/cluster.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { applyJsonPatch } from './json-patch.ts';
import type { JsonPatchOp } from '../../common/kube/json-patch.ts';

type Obj = {
  metadata: { name?: string; generateName?: string; resourceVersion?: string; uid?: string; generation?: number; [k: string]: unknown };
  [k: string]: unknown;
};

export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  contentType: string | undefined;
  body: unknown;
}

const COLLECTIONS = [
  /^\/api\/v1\/nodes$/,
  /^\/api\/v1\/namespaces$/,
  /^\/api\/v1\/namespaces\/[^/]+\/(secrets|events)$/,
  /^\/apis\/emuv\.io\/v1alpha1\/(emuvpolicies|emuvnodes)$/,
  /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/[^/]+\/leases$/,
  /^\/apis\/admissionregistration\.k8s\.io\/v1\/mutatingwebhookconfigurations$/,
  /^\/apis\/resource\.k8s\.io\/v1\/namespaces\/[^/]+\/resourceclaimtemplates$/,
];

export class OperatorApiServer {
  readonly requests: RecordedRequest[] = [];
  private readonly store = new Map<string, Map<string, Obj>>();
  private readonly watchers = new Map<string, Set<ServerResponse>>();
  private rv = 100;
  private server: Server | undefined;

  async start(): Promise<number> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const set of this.watchers.values()) for (const w of set) w.end();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /** Puts an object as if a client had created or updated it (notifies watchers). */
  /** Writes a kubeconfig for clients of this server (plain HTTP, a dummy token). Call after start(). */
  writeKubeconfig(path: string): void {
    writeFileSync(
      path,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'c',
            cluster: { server: `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`, 'insecure-skip-tls-verify': true },
          },
        ],
        users: [{ name: 'u', user: { token: 't' } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
    );
  }

  put(collection: string, obj: Obj): Obj {
    const items = this.items(collection);
    const name = obj.metadata.name!;
    const existed = items.has(name);
    const stored = structuredClone(obj);
    stored.metadata.resourceVersion = String(++this.rv);
    stored.metadata.uid ??= `uid-${name}`;
    // Like the apiserver: generation moves only when the spec changes.
    const prev = items.get(name);
    const prevGen = (prev?.metadata.generation as number | undefined) ?? 0;
    stored.metadata.generation = !prev || JSON.stringify(prev.spec) !== JSON.stringify(stored.spec) ? prevGen + 1 : prevGen;
    items.set(name, stored);
    this.notify(collection, existed ? 'MODIFIED' : 'ADDED', stored);
    return stored;
  }

  get(collection: string, name: string): Obj | undefined {
    return this.store.get(collection)?.get(name);
  }

  list(collection: string): Obj[] {
    return [...this.items(collection).values()];
  }

  private items(collection: string): Map<string, Obj> {
    let m = this.store.get(collection);
    if (!m) this.store.set(collection, (m = new Map()));
    return m;
  }

  private notify(collection: string, type: string, object: Obj): void {
    for (const w of this.watchers.get(collection) ?? []) w.write(`${JSON.stringify({ type, object })}\n`);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const [path = '', query = ''] = (req.url ?? '').split('?');
    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      return send(res, 400, status(400, 'body is not JSON'));
    }
    this.requests.push({ method: req.method!, path, query, contentType: req.headers['content-type'], body });
    const isCollection = COLLECTIONS.some((re) => re.test(path));
    if (isCollection) {
      if (req.method === 'GET' && /(^|&)watch=(true|1)/.test(query)) {
        res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
        res.flushHeaders();
        let set = this.watchers.get(path);
        if (!set) this.watchers.set(path, (set = new Set()));
        set.add(res);
        req.on('close', () => set.delete(res));
        return;
      }
      if (req.method === 'GET') {
        return send(res, 200, { kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items: this.list(path) });
      }
      if (req.method === 'POST') {
        const obj = body as Obj;
        if (!obj?.metadata) return send(res, 400, status(400, 'no metadata'));
        if (!obj.metadata.name && obj.metadata.generateName) obj.metadata.name = `${obj.metadata.generateName}${(++this.rv).toString(36)}`;
        if (this.items(path).has(obj.metadata.name!)) return send(res, 409, status(409, 'already exists'));
        return send(res, 201, this.put(path, obj));
      }
      return send(res, 405, status(405, 'method not allowed'));
    }
    let sub = '';
    let itemPath = path;
    if (path.endsWith('/status')) {
      sub = 'status';
      itemPath = path.slice(0, -'/status'.length);
    }
    const slash = itemPath.lastIndexOf('/');
    const collection = itemPath.slice(0, slash);
    const name = decodeURIComponent(itemPath.slice(slash + 1));
    if (!COLLECTIONS.some((re) => re.test(collection))) return send(res, 404, status(404, `no such resource ${path}`));
    const cur = this.items(collection).get(name);
    if (!cur) return send(res, 404, status(404, `${name} not found`));
    if (req.method === 'GET') return send(res, 200, cur);
    if (req.method === 'DELETE') {
      this.items(collection).delete(name);
      this.notify(collection, 'DELETED', cur);
      return send(res, 200, cur);
    }
    if (req.method === 'PUT') {
      const obj = body as Obj;
      if (obj?.metadata?.resourceVersion !== cur.metadata.resourceVersion) return send(res, 409, status(409, 'conflict'));
      return send(res, 200, this.put(collection, obj));
    }
    if (req.method === 'PATCH') {
      if (req.headers['content-type'] !== 'application/json-patch+json') {
        return send(res, 415, status(415, `unsupported patch content type ${String(req.headers['content-type'])}`));
      }
      let next: Obj;
      try {
        next = applyJsonPatch(cur, body as JsonPatchOp[]);
      } catch (err) {
        return send(res, 422, status(422, String(err)));
      }
      // The status subresource only takes status; the main resource ignores status (like CRDs with /status).
      if (sub === 'status') next = { ...cur, status: next.status };
      else if ('status' in cur) next = { ...next, status: cur.status };
      next.metadata.resourceVersion = cur.metadata.resourceVersion;
      return send(res, 200, this.put(collection, next));
    }
    return send(res, 405, status(405, 'method not allowed'));
  }
}

function status(code: number, message: string) {
  return { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, message };
}

function send(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

// A minimal Kubernetes REST client for the local cluster: the admin's client certificate, JSON in and out,
// and the few waits the tests and the demo share (a namespace with its ServiceAccount, a pod's phase). Tests
// read whatever fields they assert on, so documents are untyped (Json).
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { ClusterInfo } from './layout.ts';
import { waitFor } from './process.ts';

/** A decoded Kubernetes JSON document; tests read whatever fields they assert on. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export class KubeError extends Error {
  readonly status: number;
  readonly body: string;
  constructor(status: number, body: string, what: string) {
    super(`${what}: HTTP ${status}: ${body.slice(0, 500)}`);
    this.status = status;
    this.body = body;
  }
}

export class Kube {
  private readonly agent: https.Agent;
  readonly info: ClusterInfo;
  constructor(info: ClusterInfo) {
    this.info = info;
    this.agent = new https.Agent({
      ca: readFileSync(info.caFile),
      cert: readFileSync(info.adminCert),
      key: readFileSync(info.adminKey),
      keepAlive: true,
    });
  }

  close() {
    this.agent.destroy();
  }

  async raw(method: string, apiPath: string, body?: unknown, contentType = 'application/json', timeoutMs = 30_000): Promise<string> {
    const url = new URL(apiPath, this.info.server);
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    return await new Promise<string>((resolve, reject) => {
      const req = https.request(
        url,
        {
          method,
          agent: this.agent,
          headers: {
            accept: 'application/json',
            ...(payload !== undefined ? { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) } : {}),
          },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if ((res.statusCode ?? 0) >= 300) reject(new KubeError(res.statusCode ?? 0, text, `${method} ${apiPath}`));
            else resolve(text);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${apiPath}: timed out`)));
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  async json<T = Json>(method: string, apiPath: string, body?: unknown, contentType?: string): Promise<T> {
    const text = await this.raw(method, apiPath, body, contentType);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  get<T = Json>(apiPath: string) {
    return this.json<T>('GET', apiPath);
  }

  node() {
    return this.get(`/api/v1/nodes/${this.info.nodeName}`);
  }

  /** JSON patch (RFC 6902) of the node's status subresource. */
  patchNodeStatus(ops: unknown[]) {
    return this.json('PATCH', `/api/v1/nodes/${this.info.nodeName}/status`, ops, 'application/json-patch+json');
  }

  async ensureNamespace(name: string): Promise<void> {
    try {
      await this.json('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    } catch (e) {
      if (!(e instanceof KubeError && e.status === 409)) throw e;
    }
    // Pods need the namespace's default ServiceAccount (made by the controller-manager).
    await waitFor(`serviceaccount ${name}/default`, 60_000, async () => {
      try {
        return await this.get(`/api/v1/namespaces/${name}/serviceaccounts/default`);
      } catch (e) {
        if (e instanceof KubeError && e.status === 404) return undefined;
        throw e;
      }
    });
  }

  /** Deletes the namespace and waits until it is gone (its pods stopped by the kubelet). */
  async deleteNamespace(name: string, timeoutMs = 120_000): Promise<void> {
    try {
      await this.json('DELETE', `/api/v1/namespaces/${name}`);
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) return;
      throw e;
    }
    await waitFor(`namespace ${name} to be deleted`, timeoutMs, async () => {
      try {
        await this.get(`/api/v1/namespaces/${name}`);
        return undefined;
      } catch (e) {
        if (e instanceof KubeError && e.status === 404) return true;
        throw e;
      }
    });
  }

  createPod(ns: string, pod: unknown) {
    return this.json('POST', `/api/v1/namespaces/${ns}/pods`, pod);
  }

  pod(ns: string, name: string) {
    return this.get(`/api/v1/namespaces/${ns}/pods/${name}`);
  }

  podLog(ns: string, name: string, container?: string) {
    const q = container ? `?container=${encodeURIComponent(container)}` : '';
    return this.raw('GET', `/api/v1/namespaces/${ns}/pods/${name}/log${q}`);
  }

  async waitPodPhase(ns: string, name: string, phase: string, timeoutMs = 120_000): Promise<Json> {
    let last: Json;
    try {
      return await waitFor(
        `pod ${ns}/${name} to be ${phase}`,
        timeoutMs,
        async () => {
          last = await this.pod(ns, name);
          if (last?.status?.phase === 'Failed' && phase !== 'Failed') throw new Error(`pod failed: ${JSON.stringify(last.status)}`);
          return last?.status?.phase === phase ? last : undefined;
        },
        500,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}\npod status: ${JSON.stringify(last?.status ?? null)}`, { cause: e });
    }
  }
}

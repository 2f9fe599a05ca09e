/**
 * The composition root end to end: operator/main.ts as a child process against a fake apiserver that
 * speaks list/watch, so the real @kubernetes/client-node informers, patches and the HTTPS webhook run.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OperatorApiServer } from '../test/fakes/operator-apiserver.ts';
import type { Loose } from '../test/fakes/operator-objects.ts';

const POLICIES = '/apis/emuv.io/v1alpha1/emuvpolicies';
const EMUVNODES = '/apis/emuv.io/v1alpha1/emuvnodes';
const MWCS = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function until<T>(what: string, fn: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const api = new OperatorApiServer();
let child: ChildProcess;
let webhookPort = 0;
let output = '';

beforeAll(async () => {
  await api.start();
  api.put('/api/v1/nodes', { metadata: { name: 'g1', labels: { 'emuv.io/gpu.count': '1' } } });
  api.put('/api/v1/nodes', { metadata: { name: 'c1', labels: {} } });
  api.put('/api/v1/namespaces', { metadata: { name: 'ml', labels: { team: 'ml', 'kubernetes.io/metadata.name': 'ml' } } });
  api.put('/api/v1/namespaces', { metadata: { name: 'guests', labels: { 'kubernetes.io/metadata.name': 'guests' } } });
  api.put(POLICIES, {
    apiVersion: 'emuv.io/v1alpha1',
    kind: 'EmuvPolicy',
    metadata: { name: 'ml' },
    spec: { slotsPerGpu: 8, namespaceSelector: { matchLabels: { team: 'ml' } }, maxPerContainer: '32Gi' },
  });
  api.put(MWCS, {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'emuv' },
    webhooks: [{ name: 'pods.emuv.io', clientConfig: {} }],
  });
  const dir = mkdtempSync(join(tmpdir(), 'emuv-op-'));
  const kubeconfig = join(dir, 'kubeconfig');
  api.writeKubeconfig(kubeconfig);
  webhookPort = await freePort();
  child = spawn(
    process.execPath,
    [
      'operator/main.ts',
      '--namespace',
      'emuv-system',
      '--webhook-port',
      String(webhookPort),
      '--metrics-port',
      '0',
      '--log-level',
      'debug',
    ],
    {
      cwd: new URL('..', import.meta.url).pathname,
      // The apiserver through KUBECONFIG as kubectl reads it, the identity from the downward API's variable,
      // and the log level's flag over the operator's own variable: the precedence of docs/operator.md.
      env: { PATH: process.env.PATH ?? '', KUBECONFIG: kubeconfig, POD_NAME: 'op-0', EMUV_OPERATOR_LOG_LEVEL: 'error' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
}, 30_000);

afterAll(async () => {
  if (child.exitCode === null) child.kill('SIGKILL');
  await api.stop();
});

function admit(reviewFile: string, caPem: string): Promise<Loose> {
  const body = readFileSync(new URL(`../test/fixtures/admission/${reviewFile}`, import.meta.url));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: webhookPort,
        method: 'POST',
        path: '/mutate-pods',
        servername: 'emuv-webhook.emuv-system.svc',
        ca: caPem,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve(JSON.parse(text)));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('operator main: flags', () => {
  const runOperator = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, ['operator/main.ts', ...args], {
      cwd: new URL('..', import.meta.url).pathname,
      env: { PATH: process.env.PATH ?? '', ...env },
      encoding: 'utf8',
      timeout: 20_000,
    });

  it('--help prints the flags with their variables; a bad flag or variable exits 2 naming it', () => {
    const help = runOperator(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('[EMUV_OPERATOR_WEBHOOK_PORT]');
    const bad = runOperator(['--workers=0']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^emuv-operator: --workers 0: expected an integer from 1 to 32\n\nusage: emuv-operator/);
    const badEnv = runOperator([], { EMUV_OPERATOR_CONTROLLER: 'yes' });
    expect(badEnv.status).toBe(2);
    expect(badEnv.stderr).toMatch(/^emuv-operator: EMUV_OPERATOR_CONTROLLER=yes: expected on or off/);
  });

  it('a kubeconfig that cannot be loaded: exit 1 and one line naming where it came from', () => {
    const r = runOperator([], { KUBECONFIG: '/nonexistent/kubeconfig' });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('emuv-operator: KUBECONFIG=/nonexistent/kubeconfig: cannot load: no such file or directory (ENOENT)\n');
  });
});

describe('operator main against a fake apiserver', () => {
  it('reconciles, elects itself, manages its certificate and serves admissions', async () => {
    const en = await until('EmuvNode g1', () => api.get(EMUVNODES, 'g1')).catch((err) => {
      throw new Error(`${err.message}\n${output}`);
    });
    expect(en.spec).toMatchObject({ slotsPerGpu: 8, policy: 'ml' });
    expect(api.get(EMUVNODES, 'c1')).toBeUndefined();
    await until('policy status', () => (api.get(POLICIES, 'ml') as Loose)?.status?.matchedNodes === 1);
    expect(api.get('/apis/coordination.k8s.io/v1/namespaces/emuv-system/leases', 'emuv-operator')?.spec).toMatchObject({
      holderIdentity: 'op-0',
    });
    for (const r of api.requests.filter((q) => q.method === 'PATCH')) expect(r.contentType).toBe('application/json-patch+json');

    const caB64 = await until(
      'caBundle',
      () => (api.get(MWCS, 'emuv') as Loose)?.webhooks?.[0]?.clientConfig?.caBundle as string | undefined,
    );
    const caPem = Buffer.from(caB64, 'base64').toString();
    expect(api.get('/api/v1/namespaces/emuv-system/secrets', 'emuv-webhook-tls')).toBeDefined();
    await until('webhook listening', () => output.includes('webhook listening'));
    const ok = await admit('pod-create-emuv.json', caPem);
    expect(ok.response).toMatchObject({ allowed: true, patchType: 'JSONPatch' });
    const denied = await admit('pod-create-emuv-ns-denied.json', caPem);
    expect(denied.response).toMatchObject({ allowed: false, status: { code: 403 } });

    // A policy change reaches EmuvNode.spec through the watch.
    const cur = api.get(POLICIES, 'ml')!;
    api.put(POLICIES, { ...cur, spec: { ...(cur.spec as object), slotsPerGpu: 2 } });
    await until('spec update', () => (api.get(EMUVNODES, 'g1') as Loose)?.spec?.slotsPerGpu === 2);
    expect(api.requests.some((r) => r.method === 'POST' && r.path === '/api/v1/namespaces/default/events')).toBe(true);

    // allocation DRA: copied into EmuvNode.spec, and the webhook converts the pod and makes its claim templates.
    const cur2 = api.get(POLICIES, 'ml')!;
    api.put(POLICIES, { ...cur2, spec: { ...(cur2.spec as object), allocation: 'DRA' } });
    await until('allocation DRA', () => (api.get(EMUVNODES, 'g1') as Loose)?.spec?.allocation === 'DRA');
    const dra = await admit('pod-create-emuv.json', caPem);
    expect(dra.response).toMatchObject({ allowed: true, patchType: 'JSONPatch' });
    const ops = JSON.parse(Buffer.from(dra.response.patch, 'base64').toString()) as Loose[];
    expect(ops).toContainEqual({
      op: 'add',
      path: '/spec/resourceClaims',
      value: [
        { name: 'emuv-i0', resourceClaimTemplateName: 'emuv-vram-8589934592' },
        { name: 'emuv-c0', resourceClaimTemplateName: 'emuv-vram-30064771072' },
      ],
    });
    const made = api.list('/apis/resource.k8s.io/v1/namespaces/ml/resourceclaimtemplates') as Loose[];
    expect(made.map((t) => t.metadata.name).sort()).toEqual(['emuv-vram-30064771072', 'emuv-vram-8589934592']);
    expect(made.find((t) => t.metadata.name === 'emuv-vram-30064771072')).toMatchObject({
      apiVersion: 'resource.k8s.io/v1',
      kind: 'ResourceClaimTemplate',
      metadata: { namespace: 'ml', labels: { 'app.kubernetes.io/managed-by': 'emuv-webhook' } },
      spec: {
        spec: {
          devices: {
            requests: [
              {
                name: 'vram',
                exactly: {
                  deviceClassName: 'gpu.emuv.io',
                  allocationMode: 'ExactCount',
                  count: 1,
                  capacity: { requests: { memory: '30064771072' } },
                },
              },
            ],
          },
        },
      },
    });

    if (process.env.EMUV_TEST_DUMP) process.stderr.write(output);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.on('exit', (c) => r(c))));
    expect(code).toBe(0);
  }, 40_000);
});

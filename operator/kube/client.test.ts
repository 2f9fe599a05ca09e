import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient } from './client.ts';
import { claimTemplateFor } from '../webhook/claim-templates.ts';
import type { Loose } from '../../test/fakes/operator-objects.ts';

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  body: Loose;
}

const seen: Seen[] = [];
let reply: (s: Seen) => { status: number; body: unknown } = () => ({ status: 200, body: {} });
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const text = Buffer.concat(chunks).toString();
    const s: Seen = {
      method: req.method!,
      url: req.url!,
      contentType: req.headers['content-type'],
      body: text ? JSON.parse(text) : undefined,
    };
    seen.push(s);
    const r = reply(s);
    res.writeHead(r.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(r.body));
  });
});

let client: KubeClient;
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  client = new KubeClient(kc);
});
afterAll(() => server.close());

const last = () => seen[seen.length - 1]!;

describe('KubeClient against a recording HTTP server', () => {
  it('patches EmuvNode and policy status with JSON Patch content type on the right paths', async () => {
    await client.patchEmuvNode('gpu-1', [{ op: 'replace', path: '/spec/slotsPerGpu', value: 2 }]);
    expect(last()).toMatchObject({
      method: 'PATCH',
      contentType: 'application/json-patch+json',
      body: [{ op: 'replace', path: '/spec/slotsPerGpu', value: 2 }],
    });
    expect(last().url).toMatch(/^\/apis\/emuv\.io\/v1alpha1\/emuvnodes\/gpu-1\?fieldManager=emuv-operator$/);
    await client.patchEmuvPolicyStatus('p', [{ op: 'add', path: '/status', value: { matchedNodes: 1 } }]);
    expect(last().url).toMatch(/^\/apis\/emuv\.io\/v1alpha1\/emuvpolicies\/p\/status/);
    expect(last().contentType).toBe('application/json-patch+json');
    await client.patchMutatingWebhookConfiguration('emuv', [{ op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: 'Y2E=' }]);
    expect(last()).toMatchObject({ method: 'PATCH', contentType: 'application/json-patch+json' });
    expect(last().url).toMatch(/^\/apis\/admissionregistration\.k8s\.io\/v1\/mutatingwebhookconfigurations\/emuv/);
  });

  it('creates EmuvNodes and events where the apiserver expects them', async () => {
    await client.createEmuvNode({
      apiVersion: 'emuv.io/v1alpha1',
      kind: 'EmuvNode',
      metadata: { name: 'n' },
      spec: { hostSpillBudget: '1', vramReservePerGpu: '1', slotsPerGpu: 1, vramMode: 'Fill', spillBackend: 'Auto' },
    });
    expect(last()).toMatchObject({ method: 'POST', body: { kind: 'EmuvNode', metadata: { name: 'n' } } });
    expect(last().url).toMatch(/^\/apis\/emuv\.io\/v1alpha1\/emuvnodes\?fieldManager=emuv-operator$/);
    await client.createEvent({
      metadata: { generateName: 'n.', namespace: 'default' },
      involvedObject: { apiVersion: 'emuv.io/v1alpha1', kind: 'EmuvNode', name: 'n' },
      reason: 'Configured',
      message: 'm',
      type: 'Normal',
      source: { component: 'emuv-operator' },
      reportingComponent: 'emuv-operator',
      reportingInstance: 'op-0',
      action: 'Configured',
      firstTimestamp: '2026-11-27T12:00:00.000Z',
      lastTimestamp: '2026-11-27T12:00:00.000Z',
      count: 1,
    });
    expect(last().url).toBe('/api/v1/namespaces/default/events');
    expect(last().body).toMatchObject({
      reason: 'Configured',
      firstTimestamp: '2026-11-27T12:00:00.000Z',
      involvedObject: { kind: 'EmuvNode' },
    });
  });

  it('writes Lease times as MicroTime (six fractional digits) and maps 404 to undefined', async () => {
    reply = (s) => (s.method === 'GET' ? { status: 404, body: { kind: 'Status', code: 404 } } : { status: 201, body: s.body });
    expect(await client.getLease('emuv-system', 'emuv-operator')).toBeUndefined();
    const created = await client.createLease({
      metadata: { name: 'emuv-operator', namespace: 'emuv-system' },
      spec: {
        holderIdentity: 'a',
        leaseDurationSeconds: 15,
        renewTime: '2026-11-27T12:00:00.123Z',
        acquireTime: '2026-11-27T12:00:00.123Z',
        leaseTransitions: 0,
      },
    });
    expect(last().body.spec.renewTime).toBe('2026-11-27T12:00:00.123000Z');
    expect(last().url).toBe('/apis/coordination.k8s.io/v1/namespaces/emuv-system/leases');
    expect(created.spec.holderIdentity).toBe('a');
    expect(created.spec.renewTime).toMatch(/^2026-11-27T12:00:00\.123/);
    expect(await client.getSecret('emuv-system', 'x')).toBeUndefined();
    reply = () => ({ status: 500, body: { kind: 'Status', code: 500 } });
    await expect(client.getSecret('emuv-system', 'x')).rejects.toMatchObject({ code: 500 });
    reply = () => ({ status: 200, body: {} });
  });

  it('creates a ResourceClaimTemplate through resource.k8s.io/v1 with every field on the wire, and surfaces 409', async () => {
    reply = (s) => ({ status: 201, body: s.body });
    const t = claimTemplateFor('ml', 28n << 30n);
    await client.createResourceClaimTemplate(t);
    expect(last().method).toBe('POST');
    expect(last().url).toBe('/apis/resource.k8s.io/v1/namespaces/ml/resourceclaimtemplates?fieldManager=emuv-operator');
    // Exactly the template: client-node's serializer keeps only keys its models know, and dropped nothing here.
    expect(last().body).toEqual({ apiVersion: 'resource.k8s.io/v1', kind: 'ResourceClaimTemplate', ...t });
    reply = () => ({ status: 409, body: { kind: 'Status', code: 409, reason: 'AlreadyExists', message: 'exists' } });
    await expect(client.createResourceClaimTemplate(t)).rejects.toMatchObject({ code: 409 });
    reply = () => ({ status: 200, body: {} });
  });
});

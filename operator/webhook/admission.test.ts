import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { applyJsonPatch } from '../../test/fakes/json-patch.ts';
import { policy } from '../../test/fakes/operator-objects.ts';
import type { Loose } from '../../test/fakes/operator-objects.ts';
import { FakeKube } from '../../test/fakes/operator-kube.ts';
import { HttpError } from '../../test/fakes/json-patch.ts';
import { FakeClock } from '../clock.ts';
import { admitPods, handleMutatePods, parseAdmissionReview } from './admission.ts';
import { ClaimTemplates, claimTemplateFor } from './claim-templates.ts';
import { admissionPolicyFor, mutatePod } from './mutate-pod.ts';

// EMUV_LIMIT_BYTES is plain decimal bytes: the quantities of the fixtures, in bytes.
const GIB8 = String(8 * 2 ** 30);
const GIB28 = String(28 * 2 ** 30);

const dir = new URL('../../test/fixtures/admission/', import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, dir));

// Namespace "ml" is admitted (max 32Gi); "guests" is not.
const policies = [
  policy('ml', {
    namespaceSelector: { matchLabels: { team: 'ml' } },
    maxPerContainer: '32Gi',
    podMemory: { mode: 'Request', percentOfLimit: 25 },
  }),
];
const nsLabels: Record<string, Record<string, string>> = { ml: { team: 'ml' }, guests: {} };
const source = { forNamespace: (ns: string) => admissionPolicyFor(policies, ns, nsLabels[ns]) };
const handle = (name: string) => handleMutatePods(fixture(name), source, mutatePod);

function decodePatch(b64: string | undefined) {
  return b64 ? JSON.parse(Buffer.from(b64, 'base64').toString()) : [];
}

describe('fixtures', () => {
  it('pod-create-emuv: every emuv container mutated, the sidecar untouched', () => {
    const r = handle('pod-create-emuv.json');
    expect(r.status).toBe(200);
    if (r.status !== 200) return;
    expect(r.body.response).toMatchObject({ uid: '7c8a1c1e-0001-4b8e-9d2a-000000000001', allowed: true, patchType: 'JSONPatch' });
    const review = JSON.parse(fixture('pod-create-emuv.json').toString());
    const pod = applyJsonPatch(review.request.object, decodePatch(r.body.response.patch)) as Loose;
    const [model, sidecar] = pod.spec.containers;
    // 25 % of 28Gi = 7Gi added to the memory request (4Gi) and limit (8Gi).
    expect(model.resources.limits).toEqual({
      'emuv.io/vram-virtual': '28Gi',
      memory: '15Gi',
      'emuv.io/vgpu': '1',
    });
    expect(model.resources.requests).toEqual({
      'emuv.io/vram-virtual': '28Gi',
      memory: '11Gi',
      cpu: '2',
      'emuv.io/vgpu': '1',
    });
    expect(model.env).toEqual([
      { name: 'HF_HOME', value: '/cache' },
      { name: 'EMUV_LIMIT_BYTES', value: GIB28 },
    ]);
    expect(sidecar).toEqual(review.request.object.spec.containers[1]);
    const init = pod.spec.initContainers[0];
    expect(init.resources.limits).toEqual({ 'emuv.io/vram-virtual': '8Gi', 'emuv.io/vgpu': '1' });
    expect(init.env).toEqual([{ name: 'EMUV_LIMIT_BYTES', value: GIB8 }]);
    // The stored pod, sent through again (reinvocation), is left alone.
    const again = mutatePod(pod, source.forNamespace('ml'));
    expect(again).toEqual({ allowed: true, patch: [], warnings: [] });
  });

  it('captured from kube-apiserver v1.35.8: limits already defaulted into requests, init container and generateName', () => {
    for (const [file, want] of [
      ['captured-pod-create-emuv.json', { warmup: GIB8, model: GIB28 }],
      ['captured-pod-create-generatename.json', { train: GIB28 }],
    ] as const) {
      const r = handle(file);
      if (r.status !== 200) throw new Error(`${file}: HTTP ${r.status}`);
      expect(r.body.response.allowed, file).toBe(true);
      const review = JSON.parse(fixture(file).toString());
      expect(r.body.response.uid).toBe(review.request.uid);
      const pod = applyJsonPatch(review.request.object, decodePatch(r.body.response.patch)) as Loose;
      const all = [...(pod.spec.initContainers ?? []), ...pod.spec.containers] as Loose[];
      const got = Object.fromEntries(
        all.filter((c) => c.env?.some((e: Loose) => e.name === 'EMUV_LIMIT_BYTES')).map((c) => [c.name, c.env.at(-1).value]),
      );
      expect(got, file).toEqual(want);
      for (const c of all.filter((c) => c.name in want)) {
        expect(c.resources.limits['emuv.io/vgpu']).toBe('1');
        expect(c.resources.requests['emuv.io/vgpu']).toBe('1');
      }
      expect(mutatePod(pod, source.forNamespace('ml'))).toEqual({ allowed: true, patch: [], warnings: [] });
    }
  });

  it.each([
    ['pod-create-plain.json', true, undefined],
    ['pod-update.json', true, undefined],
    ['pod-create-vgpu-direct.json', false, 'emuv.io/vgpu is set by emuv'],
    ['pod-create-mismatch.json', false, 'must be equal'],
    ['pod-create-malformed.json', false, '"28 GB" is not a quantity'],
    ['pod-create-fraction.json', false, 'whole number of bytes'],
    ['pod-create-emuv-ns-denied.json', false, 'namespace "guests" may not ask'],
    ['garbage-pod-null.json', false, 'not a pod'],
    ['garbage-containers-not-list.json', false, 'spec.containers must be a list'],
    ['garbage-resources-string.json', false, 'is not a quantity'],
  ])('%s -> allowed=%s', (name, allowed, message) => {
    const r = handle(name);
    expect(r.status).toBe(200);
    if (r.status !== 200) return;
    expect(r.body.response.allowed).toBe(allowed);
    if (allowed) expect(r.body.response.patch).toBeUndefined();
    if (message) expect(r.body.response.status?.message).toContain(message);
  });

  it.each([
    ['garbage-request-null.json', 'has no request'],
    ['garbage-v1beta1.json', 'expected admission.k8s.io/v1 AdmissionReview'],
    ['garbage-no-uid.json', 'request.uid is missing'],
    ['garbage-array.json', 'not a JSON object'],
    ['garbage-not-json.txt', 'not JSON'],
    ['garbage-binary.bin', 'not JSON'],
  ])('%s -> HTTP 400', (name, message) => {
    const r = handle(name);
    expect(r).toEqual({ status: 400, body: { error: expect.stringContaining(message) } });
  });

  it('every fixture in the folder is handled without throwing', () => {
    const files = readdirSync(dir).filter((f) => !f.endsWith('.md'));
    expect(files.length).toBeGreaterThanOrEqual(17);
    for (const f of files) expect(() => handle(f), f).not.toThrow();
  });

  it('survives truncations and random bytes of a real review', () => {
    const good = fixture('pod-create-emuv.json');
    let seed = 42;
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let i = 0; i < 300; i++) {
      const b = Buffer.from(good.subarray(0, Math.floor(rand() * good.length)));
      if (b.length > 0) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      expect(() => handleMutatePods(b, source, mutatePod)).not.toThrow();
    }
  });
});

describe('parseAdmissionReview', () => {
  it('keeps dryRun and name', () => {
    const r = parseAdmissionReview(
      JSON.stringify({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', name: 'n', dryRun: true },
      }),
    );
    expect(r).toMatchObject({ ok: true, request: { uid: 'u', name: 'n', dryRun: true, namespace: '' } });
  });
});

describe('admitPods: DRA claim templates', () => {
  const draPolicies = [
    policy('ml', {
      namespaceSelector: { matchLabels: { team: 'ml' } },
      podMemory: { mode: 'Request', percentOfLimit: 25 },
      allocation: 'DRA',
    }),
  ];
  const draSource = { forNamespace: (ns: string) => admissionPolicyFor(draPolicies, ns, nsLabels[ns]) };
  const review = (over: Record<string, unknown> = {}) => {
    const r = JSON.parse(fixture('pod-create-emuv.json').toString());
    Object.assign(r.request, over);
    return JSON.stringify(r);
  };
  function setup() {
    const api = new FakeKube();
    const templates = new ClaimTemplates({ api, clock: new FakeClock() });
    const admit = (body: string, src = draSource) => admitPods(body, { policies: src, mutate: mutatePod, templates });
    const creates = () => api.summary().filter((s) => s.startsWith('create resourceclaimtemplates/'));
    return { api, admit, creates };
  }

  it('creates the templates the patch refers to before admitting, once (then from the cache)', async () => {
    const { api, admit, creates } = setup();
    const r = await admit(review());
    if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
    expect(r.body.response).toMatchObject({ allowed: true, patchType: 'JSONPatch' });
    const pod = applyJsonPatch(JSON.parse(review()).request.object, decodePatch(r.body.response.patch)) as Loose;
    expect(pod.spec.resourceClaims).toEqual([
      { name: 'emuv-i0', resourceClaimTemplateName: `emuv-vram-${GIB8}` },
      { name: 'emuv-c0', resourceClaimTemplateName: `emuv-vram-${GIB28}` },
    ]);
    // 25 % of 28Gi = 7Gi added to the memory request (4Gi) and limit (8Gi), as on the device-plugin path.
    expect(pod.spec.containers[0].resources).toEqual({
      limits: { memory: '15Gi' },
      requests: { memory: '11Gi', cpu: '2' },
      claims: [{ name: 'emuv-c0' }],
    });
    expect(pod.spec.containers[0].env).toEqual([{ name: 'HF_HOME', value: '/cache' }]);
    expect(pod.metadata.annotations['emuv.io/allocation']).toBe('DRA');
    expect(creates()).toEqual([
      `create resourceclaimtemplates/ml/emuv-vram-${GIB8}`,
      `create resourceclaimtemplates/ml/emuv-vram-${GIB28}`,
    ]);
    expect(api.claimTemplates.get(`ml/emuv-vram-${GIB28}`)).toEqual(claimTemplateFor('ml', 28n << 30n));
    const again = await admit(review({ uid: 'second' }));
    expect(again.status === 200 && again.body.response.allowed).toBe(true);
    expect(creates()).toHaveLength(2);
  });

  it('a dry run creates nothing and still answers with the patch', async () => {
    const { admit, creates } = setup();
    const r = await admit(review({ dryRun: true }));
    expect(r.status === 200 && r.body.response).toMatchObject({ allowed: true, patchType: 'JSONPatch' });
    expect(creates()).toEqual([]);
  });

  it('a template that cannot be made denies the pod with 500 InternalError and what to do', async () => {
    const { api, admit } = setup();
    api.failNext.set('create:resourceclaimtemplates', new HttpError(403, 'forbidden'));
    const r = await admit(review());
    if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
    expect(r.body.response.allowed).toBe(false);
    expect(r.body.response.patch).toBeUndefined();
    expect(r.body.response.status).toMatchObject({ code: 500, reason: 'InternalError' });
    expect(r.body.response.status?.message).toMatch(
      /^could not create ResourceClaimTemplate ml\/emuv-vram-\d+, which the pod's emuv.io\/vram-virtual claim is made from \(HTTP 403: forbidden\): the emuv operator may not create resourceclaimtemplates/,
    );
  });

  it('the device-plugin path and denied pods create nothing', async () => {
    const { admit, creates } = setup();
    const dp = await admit(review(), source);
    expect(dp.status === 200 && dp.body.response.allowed).toBe(true);
    const denied = await admit(fixture('pod-create-emuv-ns-denied.json').toString());
    expect(denied.status === 200 && denied.body.response.status?.code).toBe(403);
    const bad = await admit('not json');
    expect(bad.status).toBe(400);
    expect(creates()).toEqual([]);
  });

  it('falls back to the pod’s own namespace when the request names none', async () => {
    const { admit, creates } = setup();
    const r = await admit(review({ namespace: '' }), { forNamespace: () => ({ ...source.forNamespace('ml'), allocation: 'DRA' }) });
    expect(r.status === 200 && r.body.response.allowed).toBe(true);
    expect(creates()[0]).toBe(`create resourceclaimtemplates/ml/emuv-vram-${GIB8}`);
  });
});

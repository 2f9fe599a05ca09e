import { describe, expect, it } from 'vitest';
import { applyJsonPatch } from '../../test/fakes/json-patch.ts';
import { policy } from '../../test/fakes/operator-objects.ts';
import type { Loose } from '../../test/fakes/operator-objects.ts';
import { admissionPolicyFor, mutatePod } from './mutate-pod.ts';
import type { AdmissionPolicy } from './mutate-pod.ts';
import { ceilBytes, formatBytes, parseQuantity, wholeBytes } from '../../common/kube/quantity.ts';

// EMUV_LIMIT_BYTES is plain decimal bytes: the quantities of the fixtures, in bytes.
const GIB1 = String(2 ** 30);
const GIB2 = String(2 * 2 ** 30);
const GIB4 = String(4 * 2 ** 30);
const GIB28 = String(28 * 2 ** 30);

const open: AdmissionPolicy = { namespace: 'ml', podMemory: { mode: 'Request', percentOfLimit: 100 } };
const noMem: AdmissionPolicy = { namespace: 'ml', podMemory: { mode: 'None', percentOfLimit: 100 } };

const pod = (containers: unknown[], extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'p', namespace: 'ml' },
  spec: { containers, ...extra },
});
const ctr = (resources: unknown, env?: unknown[]) => ({ name: 'c', image: 'i', resources, ...(env ? { env } : {}) });

function apply(p: unknown, pol: AdmissionPolicy = open) {
  const r = mutatePod(p, pol);
  if (!r.allowed) throw new Error(`denied: ${r.message}`);
  return { out: applyJsonPatch(p, r.patch) as Loose, r };
}

describe('mutatePod: allowed', () => {
  it('adds vgpu, equal requests/limits, env and the memory reservation', () => {
    const { out } = apply(pod([ctr({ limits: { 'emuv.io/vram-virtual': '28Gi' } })]));
    const c = out.spec.containers[0];
    expect(c.resources).toEqual({
      limits: { 'emuv.io/vram-virtual': '28Gi', 'emuv.io/vgpu': '1' },
      requests: { 'emuv.io/vram-virtual': '28Gi', 'emuv.io/vgpu': '1', memory: '28Gi' },
    });
    expect(c.env).toEqual([{ name: 'EMUV_LIMIT_BYTES', value: GIB28 }]);
    expect(out.metadata.annotations).toEqual({
      'emuv.io/admitted': 'v1',
      'emuv.io/spill-memory-reserved': `{"c":"${GIB28}"}`,
    });
  });

  it.each([
    ['request and limit present', { requests: { memory: '4Gi' }, limits: { memory: '8Gi' } }, { req: 4 + 7, lim: 8 + 7 }],
    ['only a limit (request defaults from it)', { limits: { memory: '8Gi' } }, { req: 8 + 7, lim: 8 + 7 }],
    ['only a request', { requests: { memory: '1Gi' } }, { req: 1 + 7, lim: undefined }],
    ['nothing', {}, { req: 7, lim: undefined }],
  ])('memory reservation with %s', (_n, mem: Loose, want) => {
    const res = { limits: { ...mem.limits, 'emuv.io/vram-virtual': '14Gi' }, requests: { ...mem.requests } };
    const { out } = apply(pod([ctr(res)]), { ...open, podMemory: { mode: 'Request', percentOfLimit: 50 } });
    const r = out.spec.containers[0].resources;
    const gi = (n: number) => `${n}Gi`;
    expect(r.requests.memory).toBe(gi(want.req));
    expect(r.limits.memory).toBe(want.lim === undefined ? undefined : gi(want.lim));
  });

  it('mode None leaves memory alone', () => {
    const { out } = apply(pod([ctr({ limits: { 'emuv.io/vram-virtual': '1Gi', memory: '2Gi' } })]), noMem);
    expect(out.spec.containers[0].resources.limits.memory).toBe('2Gi');
    expect(out.spec.containers[0].resources.requests.memory).toBeUndefined();
    expect(out.metadata.annotations['emuv.io/spill-memory-reserved']).toBeUndefined();
  });

  it('copies a requests-only ask into limits', () => {
    const { out } = apply(pod([ctr({ requests: { 'emuv.io/vram-virtual': '1Gi' } })]), noMem);
    expect(out.spec.containers[0].resources.limits).toEqual({ 'emuv.io/vram-virtual': '1Gi', 'emuv.io/vgpu': '1' });
  });

  it('handles init containers and leaves other containers untouched', () => {
    const p = pod([ctr({ requests: { cpu: '1' } }), { ...ctr({ limits: { 'emuv.io/vram-virtual': '2Gi' } }), name: 'gpu' }], {
      initContainers: [{ ...ctr({ limits: { 'emuv.io/vram-virtual': '1Gi' } }), name: 'init' }],
    });
    const { out } = apply(p, noMem);
    expect(out.spec.containers[0]).toEqual(p.spec.containers[0]);
    expect(out.spec.containers[1].env).toEqual([{ name: 'EMUV_LIMIT_BYTES', value: GIB2 }]);
    expect(out.spec.initContainers[0].env).toEqual([{ name: 'EMUV_LIMIT_BYTES', value: GIB1 }]);
    expect(out.spec.initContainers[0].resources.limits['emuv.io/vgpu']).toBe('1');
  });

  it('replaces a user-set EMUV_LIMIT_BYTES and warns, keeping other env', () => {
    const env = [
      { name: 'A', value: '1' },
      { name: 'EMUV_LIMIT_BYTES', value: '999Gi' },
    ];
    const { out, r } = apply(pod([ctr({ limits: { 'emuv.io/vram-virtual': '1Gi' } }, env)]), noMem);
    expect(out.spec.containers[0].env).toEqual([
      { name: 'A', value: '1' },
      { name: 'EMUV_LIMIT_BYTES', value: GIB1 },
    ]);
    expect(r.allowed && r.warnings[0]).toContain('EMUV_LIMIT_BYTES is set by emuv');
  });

  it('is idempotent: mutating its own output changes nothing', () => {
    const p = pod([ctr({ limits: { 'emuv.io/vram-virtual': '28Gi', memory: '1Gi' } })]);
    const { out } = apply(p);
    const again = mutatePod(out, open);
    expect(again).toEqual({ allowed: true, patch: [], warnings: [] });
  });

  it('on reinvocation mutates only a container added since', () => {
    const p = pod([ctr({ limits: { 'emuv.io/vram-virtual': '2Gi' } })]);
    const { out } = apply(p, { ...open, podMemory: { mode: 'Request', percentOfLimit: 50 } });
    out.spec.containers.push({ ...ctr({ limits: { 'emuv.io/vram-virtual': '4Gi' } }), name: 'added' });
    const { out: again } = apply(out, { ...open, podMemory: { mode: 'Request', percentOfLimit: 50 } });
    expect(again.spec.containers[0]).toEqual(out.spec.containers[0]);
    expect(again.spec.containers[1].env).toEqual([{ name: 'EMUV_LIMIT_BYTES', value: GIB4 }]);
    expect(JSON.parse(again.metadata.annotations['emuv.io/spill-memory-reserved'])).toEqual({ c: GIB1, added: GIB2 });
  });

  it('never touches pods that do not ask', () => {
    expect(mutatePod(pod([ctr({ limits: { cpu: '1' } }), ctr(undefined)]), open)).toEqual({ allowed: true, patch: [], warnings: [] });
  });

  it('accepts every quantity spelling Kubernetes accepts for whole bytes', () => {
    for (const q of ['28Gi', GIB28, '30.064771072G', '30064771072e0', '0.0273437500Ti']) {
      const { out } = apply(pod([ctr({ limits: { 'emuv.io/vram-virtual': q } })]), noMem);
      expect(out.spec.containers[0].env[0].value, q).toBe(GIB28);
    }
  });

  it('escapes the resource names in patch paths', () => {
    const r = mutatePod(pod([ctr({ limits: { 'emuv.io/vram-virtual': '1Gi' }, requests: {} })]), noMem);
    expect(r.allowed && r.patch.map((o) => o.path)).toContain('/spec/containers/0/resources/limits/emuv.io~1vgpu');
  });
});

describe('mutatePod: denied', () => {
  it.each([
    [
      'requests != limits',
      ctr({ limits: { 'emuv.io/vram-virtual': '16Gi' }, requests: { 'emuv.io/vram-virtual': '8Gi' } }),
      400,
      'must be equal (request 8Gi, limit 16Gi)',
    ],
    ['malformed', ctr({ limits: { 'emuv.io/vram-virtual': '28 GB' } }), 400, '"28 GB" is not a quantity'],
    ['fraction', ctr({ limits: { 'emuv.io/vram-virtual': '1.5' } }), 400, 'must be a whole number of bytes'],
    ['zero', ctr({ limits: { 'emuv.io/vram-virtual': '0' } }), 400, 'must be greater than zero'],
    ['negative', ctr({ limits: { 'emuv.io/vram-virtual': '-1Gi' } }), 400, 'must be greater than zero'],
    ['vgpu asked directly', ctr({ limits: { 'emuv.io/vram-virtual': '1Gi', 'emuv.io/vgpu': '2' } }), 403, 'emuv.io/vgpu is set by emuv'],
    ['not a string', ctr({ limits: { 'emuv.io/vram-virtual': { x: 1 } } }), 400, 'is not a quantity'],
    [
      'limits not a map',
      ctr({ limits: ['emuv.io/vram-virtual'], requests: { 'emuv.io/vram-virtual': '1Gi' } }),
      400,
      'resources.limits must be a map',
    ],
    ['bad memory', ctr({ limits: { 'emuv.io/vram-virtual': '1Gi', memory: 'lots' } }), 400, 'memory: "lots" is not a quantity'],
    ['env not a list', ctr({ limits: { 'emuv.io/vram-virtual': '1Gi' } }, 'x' as Loose), 400, 'env must be a list'],
  ])('%s', (_n, c, code, message) => {
    const r = mutatePod(pod([c]), open);
    expect(r.allowed).toBe(false);
    if (!r.allowed) {
      expect(r.code).toBe(code);
      expect(r.message).toContain(message);
    }
  });

  it('over the per-container maximum', () => {
    const r = mutatePod(pod([ctr({ limits: { 'emuv.io/vram-virtual': '28Gi' } })]), { ...open, maxPerContainer: 16n << 30n });
    expect(r).toEqual({
      allowed: false,
      code: 403,
      message: 'container "c" asks for 28Gi of emuv.io/vram-virtual; EmuvPolicy allows at most 16Gi per container in namespace "ml"',
    });
  });

  it.each(['1e30', '9.3E', '9223372036854775808', '8Ei'])('%s: past the contract maximum (2^63-1 bytes), named in the denial', (q) => {
    // Admitted before: EMUV_LIMIT_BYTES=10^30 and a memory request of 931322574615478515625Gi.
    const r = mutatePod(pod([ctr({ limits: { 'emuv.io/vram-virtual': q } })]), open);
    expect(r).toEqual({
      allowed: false,
      code: 400,
      message: `container "c": emuv.io/vram-virtual "${q}" is larger than the maximum of 9223372036854775807 bytes (2^63-1, what EMUV_LIMIT_BYTES can carry)`,
    });
  });

  it('the contract maximum itself is admitted; memory plus its reservation past 2^63-1 is denied', () => {
    const max = '9223372036854775807';
    const ok = mutatePod(pod([ctr({ limits: { 'emuv.io/vram-virtual': max } })]), noMem);
    expect(ok.allowed).toBe(true);
    const r = mutatePod(pod([ctr({ limits: { 'emuv.io/vram-virtual': max }, requests: { memory: '1Gi' } })]), open);
    expect(r).toEqual({
      allowed: false,
      code: 400,
      message:
        'container "c": memory plus the 100% of emuv.io/vram-virtual reserved for spill is larger than the maximum of 9223372036854775807 bytes (2^63-1)',
    });
  });

  it('namespace not allowed', () => {
    const r = mutatePod(pod([ctr({ limits: { 'emuv.io/vram-virtual': '1Gi' } })]), { ...open, deniedReason: 'nope' });
    expect(r).toEqual({ allowed: false, code: 403, message: 'nope' });
  });

  it('not a pod', () => {
    for (const g of [null, 1, 'x', [], {}, { spec: 1 }, { spec: { containers: 'x' } }]) {
      const r = mutatePod(g, open);
      expect(r.allowed, JSON.stringify(g)).toBe(false);
    }
  });
});

describe('admissionPolicyFor', () => {
  const ns = (labels: Record<string, string>) => labels;
  it('no policies: everyone may ask, defaults apply', () => {
    expect(admissionPolicyFor([], 'x', undefined)).toEqual({
      namespace: 'x',
      podMemory: { mode: 'Request', percentOfLimit: 100 },
      allocation: 'DevicePlugin',
    });
  });
  it('a namespace no policy admits is denied, with the policy names', () => {
    const p = policy('teams', { namespaceSelector: { matchLabels: { team: 'ml' } } });
    expect(admissionPolicyFor([p], 'guests', ns({})).deniedReason).toBe(
      'namespace "guests" may not ask for emuv.io/vram-virtual: no EmuvPolicy\'s namespaceSelector matches it (policies: teams)',
    );
    expect(admissionPolicyFor([p], 'ml', ns({ team: 'ml' })).deniedReason).toBeUndefined();
  });
  it('matches the automatic metadata.name label even without cached labels', () => {
    const p = policy('by-name', { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ml' } } });
    expect(admissionPolicyFor([p], 'ml', undefined).deniedReason).toBeUndefined();
  });
  it('maximum: the largest of the admitting policies, unlimited if one has none', () => {
    const a = policy('a', { maxPerContainer: '16Gi' });
    const b = policy('b', { maxPerContainer: '32Gi' });
    const c = policy('c', { namespaceSelector: { matchLabels: { x: 'y' } } });
    expect(admissionPolicyFor([a, b, c], 'ml', {}).maxPerContainer).toBe(32n << 30n);
    expect(admissionPolicyFor([a, b, c], 'ml', { x: 'y' }).maxPerContainer).toBeUndefined();
  });
  it('reservation: highest priority, then the larger one', () => {
    const lo = policy('lo', { priority: 1, podMemory: { mode: 'Request', percentOfLimit: 100 } });
    const hi = policy('hi', { priority: 2, podMemory: { mode: 'None', percentOfLimit: 100 } });
    const tie = policy('tie', { priority: 2, podMemory: { mode: 'Request', percentOfLimit: 30 } });
    expect(admissionPolicyFor([lo, hi], 'ml', {}).podMemory.mode).toBe('None');
    expect(admissionPolicyFor([lo, hi, tie], 'ml', {}).podMemory).toEqual({ mode: 'Request', percentOfLimit: 30 });
  });
});

describe('admissionPolicyFor: allocation', () => {
  it('comes from the applicable policy with the highest priority; ties go to the first by name', () => {
    const lo = policy('lo', { priority: 1, allocation: 'DRA' });
    const hi = policy('hi', { priority: 2 });
    const other = policy('other', { priority: 9, allocation: 'DRA', namespaceSelector: { matchLabels: { team: 'x' } } });
    expect(admissionPolicyFor([lo], 'ml', {}).allocation).toBe('DRA');
    expect(admissionPolicyFor([lo, hi], 'ml', {}).allocation).toBe('DevicePlugin');
    // A policy whose namespaceSelector misses the namespace does not count, whatever its priority.
    expect(admissionPolicyFor([lo, hi, other], 'ml', {}).allocation).toBe('DevicePlugin');
    expect(admissionPolicyFor([lo, hi, other], 'ml', { team: 'x' }).allocation).toBe('DRA');
    const a = policy('a', { priority: 2, allocation: 'DRA' });
    const z = policy('z', { priority: 2 });
    expect(admissionPolicyFor([z, a], 'ml', {}).allocation).toBe('DRA');
    expect(admissionPolicyFor([z, policy('b', { priority: 2 }), a], 'ml', {}).allocation).toBe('DRA');
    expect(admissionPolicyFor([policy('a', { priority: 2 }), policy('b', { priority: 2, allocation: 'DRA' })], 'ml', {}).allocation).toBe(
      'DevicePlugin',
    );
  });
  it('a denied namespace gets the default', () => {
    const p = policy('dra', { allocation: 'DRA', namespaceSelector: { matchLabels: { team: 'ml' } } });
    expect(admissionPolicyFor([p], 'guests', {})).toMatchObject({ allocation: 'DevicePlugin', deniedReason: expect.any(String) });
  });
});

describe('mutatePod: DRA', () => {
  const dra: AdmissionPolicy = { ...open, allocation: 'DRA' };
  const draNoMem: AdmissionPolicy = { ...noMem, allocation: 'DRA' };
  const GIB28N = 28n << 30n;

  it('turns the limit into a pod claim from the size template, keeps the memory reservation, sets no EMUV_LIMIT_BYTES', () => {
    const p = pod([ctr({ limits: { 'emuv.io/vram-virtual': '28Gi', memory: '4Gi' }, requests: { cpu: '1' } })]);
    const { out, r } = apply(p, dra);
    const c = out.spec.containers[0];
    expect(c.resources).toEqual({
      limits: { memory: '32Gi' },
      requests: { cpu: '1', memory: '32Gi' },
      claims: [{ name: 'emuv-c0' }],
    });
    expect(c.env).toBeUndefined();
    expect(out.spec.resourceClaims).toEqual([{ name: 'emuv-c0', resourceClaimTemplateName: `emuv-vram-${GIB28}` }]);
    expect(out.metadata.annotations).toEqual({
      'emuv.io/admitted': 'v1',
      'emuv.io/allocation': 'DRA',
      'emuv.io/spill-memory-reserved': `{"c":"${GIB28}"}`,
    });
    expect(r).toMatchObject({ allowed: true, warnings: [], claimTemplates: [GIB28N] });
    expect(JSON.stringify(out)).not.toContain('emuv.io/vgpu');
    expect(JSON.stringify(out)).not.toContain('emuv.io/vram-virtual');
  });

  it('drops maps left empty: a requests-only ask gains no limits', () => {
    const { out } = apply(pod([ctr({ requests: { 'emuv.io/vram-virtual': '1Gi' } })]), draNoMem);
    expect(out.spec.containers[0].resources).toEqual({ claims: [{ name: 'emuv-c0' }] });
  });

  it('names claims by list and index, shares one template per size, keeps the user claims', () => {
    const p = pod(
      [
        { ...ctr({ requests: { cpu: '1' } }), name: 'plain' },
        { ...ctr({ limits: { 'emuv.io/vram-virtual': '2Gi' }, claims: [{ name: 'mine' }] }), name: 'a' },
        { ...ctr({ limits: { 'emuv.io/vram-virtual': '2Gi' } }), name: 'b' },
      ],
      {
        initContainers: [{ ...ctr({ limits: { 'emuv.io/vram-virtual': '1Gi' } }), name: 'init' }],
        resourceClaims: [{ name: 'mine', resourceClaimName: 'shared-gpu' }],
      },
    );
    const { out, r } = apply(p, draNoMem);
    expect(out.spec.containers[0]).toEqual(p.spec.containers[0]);
    expect(out.spec.containers[1].resources.claims).toEqual([{ name: 'mine' }, { name: 'emuv-c1' }]);
    expect(out.spec.containers[2].resources.claims).toEqual([{ name: 'emuv-c2' }]);
    expect(out.spec.initContainers[0].resources).toEqual({ claims: [{ name: 'emuv-i0' }] });
    expect(out.spec.resourceClaims).toEqual([
      { name: 'mine', resourceClaimName: 'shared-gpu' },
      { name: 'emuv-i0', resourceClaimTemplateName: `emuv-vram-${GIB1}` },
      { name: 'emuv-c1', resourceClaimTemplateName: `emuv-vram-${GIB2}` },
      { name: 'emuv-c2', resourceClaimTemplateName: `emuv-vram-${GIB2}` },
    ]);
    expect(r.allowed && r.claimTemplates).toEqual([1n << 30n, 2n << 30n]);
  });

  it('is idempotent, and a reinvocation converts only a container added since, listing nothing twice', () => {
    const { out } = apply(pod([ctr({ limits: { 'emuv.io/vram-virtual': '2Gi' } })]), dra);
    expect(mutatePod(out, dra)).toEqual({ allowed: true, patch: [], warnings: [] });
    out.spec.containers.push({ ...ctr({ limits: { 'emuv.io/vram-virtual': '4Gi' } }), name: 'added' });
    const { out: again, r } = apply(out, dra);
    expect(again.spec.containers[0]).toEqual(out.spec.containers[0]);
    expect(again.spec.containers[1].resources.claims).toEqual([{ name: 'emuv-c1' }]);
    expect(again.spec.resourceClaims.map((c: Loose) => c.name)).toEqual(['emuv-c0', 'emuv-c1']);
    expect(r.allowed && r.claimTemplates).toEqual([4n << 30n]);
    expect(JSON.parse(again.metadata.annotations['emuv.io/spill-memory-reserved'])).toEqual({ c: GIB2, added: GIB4 });
  });

  it('reuses an entry that is already what it would add (a pod written from an earlier conversion)', () => {
    const resourceClaims = [{ name: 'emuv-c0', resourceClaimTemplateName: `emuv-vram-${GIB1}` }];
    const p = pod([ctr({ limits: { 'emuv.io/vram-virtual': '1Gi' }, claims: [{ name: 'emuv-c0' }] })], { resourceClaims });
    const { out } = apply(p, draNoMem);
    expect(out.spec.resourceClaims).toEqual(resourceClaims);
    expect(out.spec.containers[0].resources.claims).toEqual([{ name: 'emuv-c0' }]);
  });

  it('refuses to take over a pod claim of the user that has emuv’s name', () => {
    const p = pod([ctr({ limits: { 'emuv.io/vram-virtual': '1Gi' } })], { resourceClaims: [{ name: 'emuv-c0', resourceClaimName: 'x' }] });
    const r = mutatePod(p, dra);
    expect(r).toMatchObject({ allowed: false, code: 400, message: expect.stringContaining('the pod claim "emuv-c0" is emuv') });
    const bad = mutatePod(pod([ctr({ limits: { 'emuv.io/vram-virtual': '1Gi' } })], { resourceClaims: 'x' }), dra);
    expect(bad).toMatchObject({ allowed: false, code: 400, message: 'spec.resourceClaims must be a list' });
  });

  it('removes a user-set EMUV_LIMIT_BYTES with the same warning, keeping other env', () => {
    const env = [
      { name: 'A', value: '1' },
      { name: 'EMUV_LIMIT_BYTES', value: '999Gi' },
    ];
    const { out, r } = apply(pod([ctr({ limits: { 'emuv.io/vram-virtual': '1Gi' } }, env)]), draNoMem);
    expect(out.spec.containers[0].env).toEqual([{ name: 'A', value: '1' }]);
    expect(r.allowed && r.warnings).toEqual(['container "c": EMUV_LIMIT_BYTES is set by emuv; the value in the pod spec was replaced']);
  });

  it('still enforces the per-container maximum, the equality of request and limit, and the namespace gate', () => {
    const over = mutatePod(pod([ctr({ limits: { 'emuv.io/vram-virtual': '28Gi' } })]), { ...dra, maxPerContainer: 16n << 30n });
    expect(over).toMatchObject({ allowed: false, code: 403, message: expect.stringContaining('allows at most 16Gi per container') });
    const mismatch = mutatePod(
      pod([ctr({ limits: { 'emuv.io/vram-virtual': '16Gi' }, requests: { 'emuv.io/vram-virtual': '8Gi' } })]),
      dra,
    );
    expect(mismatch).toMatchObject({ allowed: false, code: 400 });
    expect(mutatePod(pod([ctr({ limits: { 'emuv.io/vram-virtual': '1Gi' } })]), { ...dra, deniedReason: 'nope' })).toEqual({
      allowed: false,
      code: 403,
      message: 'nope',
    });
    const vgpu = mutatePod(pod([ctr({ limits: { 'emuv.io/vram-virtual': '1Gi', 'emuv.io/vgpu': '1' } })]), dra);
    expect(vgpu).toMatchObject({ allowed: false, code: 403 });
  });

  it('leaves pods with their own claims that do not ask for emuv.io/vram-virtual alone', () => {
    const p = pod([ctr({ claims: [{ name: 'gpu' }] })], {
      resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: 'emuv-vram-1073741824' }],
    });
    expect(mutatePod(p, dra)).toEqual({ allowed: true, patch: [], warnings: [] });
  });

  it('the device-plugin path is unchanged: the same pod under DevicePlugin gets the slot and EMUV_LIMIT_BYTES', () => {
    const p = pod([ctr({ limits: { 'emuv.io/vram-virtual': '1Gi' } })]);
    for (const pol of [open, { ...open, allocation: 'DevicePlugin' as const }]) {
      const { out, r } = apply(p, pol);
      expect(out.spec.containers[0].resources.limits).toEqual({ 'emuv.io/vram-virtual': '1Gi', 'emuv.io/vgpu': '1' });
      expect(out.spec.containers[0].env).toEqual([{ name: 'EMUV_LIMIT_BYTES', value: GIB1 }]);
      expect(out.spec.resourceClaims).toBeUndefined();
      expect(out.metadata.annotations['emuv.io/allocation']).toBeUndefined();
      expect(r).not.toHaveProperty('claimTemplates');
    }
  });
});

describe('quantity', () => {
  it.each([
    ['28Gi', 30064771072n],
    ['1k', 1000n],
    ['1M', 1000000n],
    ['1E', 10n ** 18n],
    ['1e3', 1000n],
    ['.5Ki', 512n],
    ['+7', 7n],
  ])('%s', (q, want) => expect(wholeBytes(parseQuantity(q), 'x')).toBe(want));
  it('rounds memory up', () => expect(ceilBytes(parseQuantity('100m'))).toBe(1n));
  it('rejects junk', () => {
    for (const q of ['', 'Gi', '1 Gi', '1GB', '1e', '--1', '1.2.3', 'x'.repeat(65), '1e99']) expect(() => parseQuantity(q), q).toThrow();
  });
  it('formats exactly', () => {
    expect([formatBytes(28n << 30n), formatBytes(1536n << 20n), formatBytes(1000n), formatBytes(0n)]).toEqual([
      '28Gi',
      '1536Mi',
      '1000',
      '0',
    ]);
  });
});

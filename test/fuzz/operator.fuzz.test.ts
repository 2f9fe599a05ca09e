/**
 * Fuzzing what the operator reads from others: resource quantities in pod specs, AdmissionReview bodies
 * from the apiserver, the pods inside them, and EmuvPolicy objects. Properties: nothing throws; a decision
 * is always an answer; what the webhook admits carries an EMUV_LIMIT_BYTES the interposer contract
 * accepts; an EmuvPolicy the CRD rules accept is one the agent applies.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseNodeConfig } from '../../common/contracts/emuv-node.ts';
import { MAX_SIZE_BYTES, parseSize } from '../../common/contracts/interposer.ts';
import { parseEmuvPolicy } from '../../operator/api/validate.ts';
import { applyJsonPatch } from '../fakes/json-patch.ts';
import { handleMutatePods, type PolicySource } from '../../operator/webhook/admission.ts';
import { mutatePod, type AdmissionPolicy } from '../../operator/webhook/mutate-pod.ts';
import { formatBytes, parseQuantity, QuantityError } from '../../common/kube/quantity.ts';
import { corpus, fuzz } from './fuzz.ts';

const SUFFIXES = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei', 'n', 'u', 'm', 'k', 'M', 'G', 'T', 'P', 'E'];
const EXPONENTS = ['e3', 'E18', 'e30', 'e-3', 'e31', 'E', 'e', 'e+2', 'e-30'];

/** Quantity spellings, well-formed and nearly so, small and absurd. */
const quantity = fc.oneof(
  fc
    .tuple(
      fc.constantFrom('', '', '+', '-'),
      fc.oneof(fc.stringMatching(/^[0-9]{1,25}$/), fc.stringMatching(/^[0-9]{0,12}\.[0-9]{0,12}$/)),
      fc.constantFrom(...SUFFIXES, ...EXPONENTS),
    )
    .map(([sign, digits, suffix]) => `${sign}${digits}${suffix}`),
  fc.string({ maxLength: 70 }),
  fc.integer(),
  fc.double(),
  fc.jsonValue({ maxDepth: 1 }),
);

const policies: AdmissionPolicy[] = [
  { namespace: 'ml', podMemory: { mode: 'Request', percentOfLimit: 100 } },
  { namespace: 'ml', podMemory: { mode: 'Request', percentOfLimit: 37 } },
  { namespace: 'ml', podMemory: { mode: 'None', percentOfLimit: 100 } },
  { namespace: 'ml', maxPerContainer: 48n << 30n, podMemory: { mode: 'Request', percentOfLimit: 100 } },
];

const resources = fc.record(
  {
    limits: fc.dictionary(fc.constantFrom('emuv.io/vram-virtual', 'memory', 'emuv.io/vgpu', 'cpu'), quantity, { maxKeys: 3 }),
    requests: fc.dictionary(fc.constantFrom('emuv.io/vram-virtual', 'memory', 'cpu'), quantity, { maxKeys: 3 }),
  },
  { requiredKeys: [] },
);
const container = fc.record(
  {
    name: fc.oneof(fc.constantFrom('a', 'b', 'main'), fc.jsonValue({ maxDepth: 0 })),
    resources: fc.oneof(resources, fc.jsonValue({ maxDepth: 2 })),
    env: fc.oneof(
      fc.constant([
        { name: 'EMUV_LIMIT_BYTES', value: '1' },
        { name: 'X', value: 'y' },
      ]),
      fc.jsonValue({ maxDepth: 2 }),
    ),
  },
  { requiredKeys: ['resources'] },
);
const pod = fc.oneof(
  fc.record(
    {
      metadata: fc.oneof(
        fc.constant({ name: 'p', annotations: { 'emuv.io/admitted': 'v1' } }),
        fc.constant({ name: 'p' }),
        fc.jsonValue({ maxDepth: 2 }),
      ),
      spec: fc.record(
        {
          containers: fc.oneof(fc.array(container, { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
          initContainers: fc.array(container, { maxLength: 2 }),
        },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: ['spec'] },
  ),
  fc.jsonValue({ maxDepth: 4 }),
);

/** What the webhook admits must be something the interposer and the kubelet can hold. */
function checkMutation(p: unknown, policy: AdmissionPolicy): void {
  const r = mutatePod(p, policy);
  if (!r.allowed) {
    expect([400, 403]).toContain(r.code);
    expect(r.message.length).toBeLessThan(1000);
    return;
  }
  const out = applyJsonPatch(p, r.patch) as { spec?: Record<string, unknown[] | undefined> };
  // The containers the patch touched: their limit and memory are the webhook's output.
  const touched = (list: string, i: number) =>
    r.patch.some(
      (op) =>
        op.path === '/spec' || op.path === `/spec/${list}` || op.path.startsWith(`/spec/${list}/${i}/`) || op.path === `/spec/${list}/${i}`,
    );
  const all = ['containers', 'initContainers'].flatMap((list) => (out.spec?.[list] ?? []).filter((_, i) => touched(list, i)));
  type Mutated = {
    env?: { name: string; value: string }[];
    resources?: { limits?: Record<string, unknown>; requests?: Record<string, unknown> };
  };
  for (const c of all as (Mutated | null)[]) {
    if (typeof c !== 'object' || c === null) continue;
    const limit = Array.isArray(c.env) ? c.env.find((e) => e?.name === 'EMUV_LIMIT_BYTES') : undefined;
    if (!limit) continue;
    const bytes = parseSize(limit.value); // throws on what the interposer would refuse
    expect(bytes > 0n && bytes <= MAX_SIZE_BYTES).toBe(true);
    // The memory request is the webhook's output only where it adds the spill reservation.
    const mem = policy.podMemory.mode === 'Request' ? c.resources?.requests?.memory : undefined;
    if (mem !== undefined) expect(parseQuantity(mem).num <= MAX_SIZE_BYTES * parseQuantity(mem).den).toBe(true);
  }
}

describe('fuzz: resource quantities (webhook)', () => {
  it('parseQuantity returns an exact reduced rational or a QuantityError, nothing else', () => {
    fuzz(
      fc.property(quantity, (q) => {
        try {
          const r = parseQuantity(q);
          expect(r.den > 0n).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(QuantityError);
        }
      }),
      3000,
    );
  });

  it('formatBytes is read back exactly', () => {
    fuzz(
      fc.property(fc.bigInt({ min: 0n, max: MAX_SIZE_BYTES }), (b) => {
        expect(parseQuantity(formatBytes(b))).toEqual({ num: b, den: 1n });
      }),
      2000,
    );
  });

  it.each(corpus<string>('quantity').map((c) => [c.input, c.was]))('corpus %s (%s)', (q) => {
    for (const policy of policies)
      checkMutation({ spec: { containers: [{ name: 'c', resources: { limits: { 'emuv.io/vram-virtual': q } } }] } }, policy);
  });
});

describe('fuzz: pods in admission', () => {
  it('mutatePod never throws; what it admits carries a limit the interposer accepts and memory an int64 holds', () => {
    fuzz(
      fc.property(pod, fc.constantFrom(...policies), (p, policy) => checkMutation(p, policy)),
      1500,
    );
  });

  it.each(corpus<unknown>('pod').map((c) => [JSON.stringify(c.input).slice(0, 80), c.input, c.was]))('corpus %s', (_n, p) => {
    for (const policy of policies) checkMutation(p, policy);
  });
});

describe('fuzz: AdmissionReview bodies', () => {
  const source: PolicySource = { forNamespace: (namespace) => ({ ...policies[0]!, namespace }) };
  const review = fc.record(
    {
      apiVersion: fc.oneof(fc.constant('admission.k8s.io/v1'), fc.string({ maxLength: 20 })),
      kind: fc.oneof(fc.constant('AdmissionReview'), fc.jsonValue({ maxDepth: 0 })),
      request: fc.oneof(
        fc.record(
          {
            uid: fc.oneof(fc.uuid(), fc.jsonValue({ maxDepth: 0 })),
            kind: fc.oneof(fc.constant({ group: '', version: 'v1', kind: 'Pod' }), fc.jsonValue({ maxDepth: 1 })),
            operation: fc.oneof(fc.constantFrom('CREATE', 'UPDATE'), fc.jsonValue({ maxDepth: 0 })),
            namespace: fc.oneof(fc.constant('ml'), fc.jsonValue({ maxDepth: 0 })),
            dryRun: fc.jsonValue({ maxDepth: 0 }),
            object: pod,
          },
          { requiredKeys: [] },
        ),
        fc.jsonValue({ maxDepth: 2 }),
      ),
    },
    { requiredKeys: [] },
  );
  const body = fc.oneof(
    review.map((r) => JSON.stringify(r)),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'),
    fc.string({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  );

  it('every body gets a 400 with a reason or a review response with its uid; nothing throws', () => {
    fuzz(
      fc.property(body, (b) => {
        const r = handleMutatePods(b, source, mutatePod);
        if (r.status === 400) {
          expect(r.body.error.length).toBeGreaterThan(0);
          return;
        }
        const uid = (JSON.parse(typeof b === 'string' ? b : b.toString('utf8')) as { request: { uid: string } }).request.uid;
        expect(r.body.response.uid).toBe(uid);
        if (r.body.response.patch) expect(() => JSON.parse(Buffer.from(r.body.response.patch!, 'base64').toString())).not.toThrow();
      }),
      1500,
    );
  });
});

describe('fuzz: EmuvPolicy decoding', () => {
  const size = fc.oneof(
    fc
      .tuple(fc.stringMatching(/^(0|[1-9][0-9]{0,24})$/), fc.constantFrom('', 'Ki', 'Mi', 'Gi', 'Ti'))
      .map(([digits, suffix]) => `${digits}${suffix}`),
    fc.constantFrom('Auto', '0%', '90%', '91%', '100%', '512M', '7.5Gi', ''),
    fc.string({ maxLength: 30 }),
    fc.jsonValue({ maxDepth: 0 }),
  );
  const spec = fc.record(
    {
      hostSpillBudget: size,
      vramReservePerGpu: size,
      maxPerContainer: size,
      slotsPerGpu: fc.oneof(fc.integer({ min: -2, max: 200 }), fc.jsonValue({ maxDepth: 0 })),
      vramMode: fc.constantFrom('Fill', 'Fixed', 'fill', 3),
      spillBackend: fc.constantFrom('Auto', 'Pinned', 'Managed', 'Vmm'),
      priority: fc.oneof(fc.integer({ min: -1, max: 2_000_000 }), fc.double()),
      podMemory: fc.oneof(
        fc.record(
          { mode: fc.constantFrom('Request', 'None', 'Limit'), percentOfLimit: fc.integer({ min: -1, max: 101 }) },
          { requiredKeys: [] },
        ),
        fc.jsonValue({ maxDepth: 1 }),
      ),
      nodeSelector: fc.jsonValue({ maxDepth: 3 }),
      namespaceSelector: fc.jsonValue({ maxDepth: 3 }),
    },
    { requiredKeys: [] },
  );
  // Mostly-valid specs whose sizes vary: a random value in every field almost never passes the other rules,
  // and the sizes are where the CRD and the agent could disagree.
  const sizesOnly = fc.record(
    {
      hostSpillBudget: size,
      vramReservePerGpu: size,
      slotsPerGpu: fc.integer({ min: 1, max: 128 }),
      vramMode: fc.constantFrom('Fill', 'Fixed'),
    },
    { requiredKeys: [] },
  );
  const policy = fc.oneof(
    sizesOnly.map((s) => ({ apiVersion: 'emuv.io/v1alpha1', kind: 'EmuvPolicy', metadata: { name: 'p' }, spec: s })),
    spec.map((s) => ({ apiVersion: 'emuv.io/v1alpha1', kind: 'EmuvPolicy', metadata: { name: 'p' }, spec: s })),
    fc.jsonValue({ maxDepth: 4 }),
  );

  /** The CRD's rules (their TypeScript twins) accept it exactly when it is something the agent applies. */
  const check = (raw: unknown) => {
    const r = parseEmuvPolicy(raw);
    if (!r.ok) {
      expect(r.errors.length).toBeGreaterThan(0);
      return;
    }
    expect(() => parseNodeConfig(r.value.spec)).not.toThrow();
  };

  it('parseEmuvPolicy never throws, and what it accepts the agent applies', () => {
    fuzz(fc.property(policy, check), 2000);
  });

  it.each(corpus<unknown>('emuv-policy').map((c) => [JSON.stringify(c.input), c.input, c.was]))('corpus %s', (_n, raw) => check(raw));
});

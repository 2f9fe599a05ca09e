import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { CRD_FILES, crdYaml } from './crd.ts';
import { parseNodeConfig } from '../../common/contracts/emuv-node.ts';
import {
  DEFAULTS,
  MAX_NODE_SIZE_BYTES,
  nodeSpecSchema,
  nodeStatusSchema,
  policySpecSchema,
  policyStatusSchema,
  sizeMaxRule,
} from './schema.ts';
import type { Schema } from './schema.ts';
import { matchesSelector } from './selector.ts';
import { CEL_TWINS, defaultedPolicySpec, parseEmuvNode, parseEmuvPolicy } from './validate.ts';

const policy = (spec: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'emuv.io/v1alpha1',
  kind: 'EmuvPolicy',
  metadata: { name: 'p' },
  spec,
  ...extra,
});

describe('CRD YAML', () => {
  for (const [file, build] of Object.entries(CRD_FILES)) {
    it(`deploy/crds/${file} and helm/emuv/crds/${file} are what schema.ts generates`, () => {
      for (const dir of ['deploy/crds', 'helm/emuv/crds']) {
        const text = readFileSync(new URL(`../../${dir}/${file}`, import.meta.url), 'utf8');
        expect(text, dir).toBe(crdYaml(build()));
      }
    });
  }

  it('policy CRD defaults equal the TypeScript DEFAULTS table', () => {
    const text = readFileSync(new URL('../../deploy/crds/emuv.io_emuvpolicies.yaml', import.meta.url), 'utf8');
    const spec = parse(text).spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
    expect(spec.priority.default).toBe(DEFAULTS.priority);
    expect(spec.hostSpillBudget.default).toBe(DEFAULTS.hostSpillBudget);
    expect(spec.vramReservePerGpu.default).toBe(DEFAULTS.vramReservePerGpu);
    expect(spec.slotsPerGpu.default).toBe(DEFAULTS.slotsPerGpu);
    expect(spec.vramMode.default).toBe(DEFAULTS.vramMode);
    expect(spec.spillBackend.default).toBe(DEFAULTS.spillBackend);
    expect(spec.allocation).toMatchObject({ type: 'string', enum: ['DevicePlugin', 'DRA'], default: 'DevicePlugin' });
    expect(DEFAULTS.allocation).toBe('DevicePlugin');
    expect(spec.podMemory.default).toEqual(DEFAULTS.podMemory);
    expect(spec.nodeSelector.default).toEqual({});
  });

  it('every CEL rule has a TypeScript twin, a message, and no id in the YAML', () => {
    const seen: string[] = [];
    const walk = (s: Schema) => {
      for (const r of s['x-kubernetes-validations'] ?? []) {
        expect(CEL_TWINS[r.id], r.id).toBeTypeOf('function');
        expect(r.message.length).toBeGreaterThan(20);
        seen.push(r.id);
      }
      Object.values(s.properties ?? {}).forEach(walk);
      if (s.items) walk(s.items);
      if (s.additionalProperties) walk(s.additionalProperties);
    };
    for (const s of [policySpecSchema, policyStatusSchema, nodeSpecSchema, nodeStatusSchema]) walk(s);
    expect([...new Set(seen)].sort()).toEqual(Object.keys(CEL_TWINS).sort());
    for (const file of Object.keys(CRD_FILES)) {
      const text = readFileSync(new URL(`../../deploy/crds/${file}`, import.meta.url), 'utf8');
      expect(text).not.toMatch(/^\s*id: /m);
    }
  });

  it('printer columns cover what an admin looks at first', () => {
    const cols = (file: string) =>
      parse(readFileSync(new URL(`../../deploy/crds/${file}`, import.meta.url), 'utf8')).spec.versions[0].additionalPrinterColumns.map(
        (c: { name: string }) => c.name,
      );
    expect(cols('emuv.io_emuvnodes.yaml')).toEqual(expect.arrayContaining(['GPUs', 'VRAM', 'Virtual', 'Committed', 'Spill', 'Age']));
    expect(cols('emuv.io_emuvpolicies.yaml')).toEqual(expect.arrayContaining(['Priority', 'Matched', 'Conflicts', 'Ready', 'Age']));
  });
});

describe('parseEmuvPolicy', () => {
  it('fills every default into an empty spec', () => {
    const r = parseEmuvPolicy(policy({}));
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.value.spec).toEqual({
        nodeSelector: {},
        priority: 0,
        hostSpillBudget: 'Auto',
        vramReservePerGpu: '512Mi',
        slotsPerGpu: 16,
        vramMode: 'Fill',
        spillBackend: 'Auto',
        allocation: 'DevicePlugin',
        podMemory: { mode: 'Request', percentOfLimit: 100 },
      });
    }
  });

  it('takes allocation DRA and refuses any other spelling', () => {
    const r = parseEmuvPolicy(policy({ allocation: 'DRA' }));
    expect(r.ok && r.value.spec.allocation).toBe('DRA');
    const bad = parseEmuvPolicy(policy({ allocation: 'dra' }));
    expect(bad).toEqual({ ok: false, errors: ['spec.allocation: must be one of DevicePlugin, DRA (got "dra")'] });
  });

  it('keeps explicit values and defaults nested ones', () => {
    const r = parseEmuvPolicy(policy({ priority: 7, podMemory: { mode: 'None' }, maxPerContainer: '48Gi' }));
    expect(r.ok && r.value.spec.podMemory).toEqual({ mode: 'None', percentOfLimit: 100 });
    expect(r.ok && r.value.spec.maxPerContainer).toBe('48Gi');
  });

  const bad: Array<[string, unknown, string]> = [
    ['spill percent over 90', { hostSpillBudget: '95%' }, 'spec.hostSpillBudget: hostSpillBudget may be at most 90%'],
    ['spill garbage', { hostSpillBudget: 'lots' }, 'spec.hostSpillBudget: must be Auto, a size (e.g. 64Gi) or a percentage'],
    [
      'decimal suffix',
      { vramReservePerGpu: '512M' },
      'spec.vramReservePerGpu: must be a size: whole bytes or an integer with Ki, Mi, Gi or Ti (e.g. 28Gi); decimal units (28G)',
    ],
    ['fractional size', { maxPerContainer: '7.5Gi' }, 'spec.maxPerContainer: must be a size'],
    ['zero max', { maxPerContainer: '0' }, 'spec.maxPerContainer: maxPerContainer must be greater than zero'],
    ['slots zero', { slotsPerGpu: 0 }, 'spec.slotsPerGpu: must be at least 1'],
    ['slots fraction', { slotsPerGpu: 1.5 }, 'spec.slotsPerGpu: must be an integer'],
    ['mode case', { vramMode: 'fill' }, 'spec.vramMode: must be one of Fill, Fixed (got "fill")'],
    ['negative priority', { priority: -1 }, 'spec.priority: must be at least 0'],
    ['unknown field', { slotsPerGPU: 4 }, 'spec: unknown field "slotsPerGPU"'],
    [
      'In without values',
      { nodeSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } },
      'values must be non-empty when operator is In',
    ],
    [
      'Exists with values',
      { nodeSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } },
      'empty when it is Exists',
    ],
    ['request mode with 0%', { podMemory: { mode: 'Request', percentOfLimit: 0 } }, 'use mode None to reserve nothing'],
    ['spec not an object', 'x', 'spec: must be an object'],
    // Sizes the agent then refuses (parseNodeConfig): the CRD refuses them first, with the agent's limit.
    [
      'a spill budget past what the agent applies',
      { hostSpillBudget: '9999999999999999999999Ti' },
      'spec.hostSpillBudget: must be at most 9007199254740991 bytes (2^53-1, about 8 PiB, e.g. 8191Ti): the largest size the node agent applies',
    ],
    [
      'a reserve of 2^63 bytes',
      { vramReservePerGpu: '9223372036854775808' },
      'spec.vramReservePerGpu: must be at most 9007199254740991 bytes',
    ],
    ['8192Ti', { vramReservePerGpu: '8192Ti' }, 'spec.vramReservePerGpu: must be at most 9007199254740991 bytes'],
  ];
  it.each(bad)('rejects %s', (_name, spec, message) => {
    const r = parseEmuvPolicy(policy(spec));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.join('\n')).toContain(message);
  });

  it.each([
    ['wrong version', { apiVersion: 'emuv.io/v1' }, 'apiVersion: must be emuv.io/v1alpha1'],
    ['wrong kind', { kind: 'EmuvNode' }, 'kind: must be EmuvPolicy'],
    ['no name', { metadata: {} }, 'metadata.name: is required'],
  ])('rejects %s', (_n, extra, message) => {
    const r = parseEmuvPolicy(policy({}, extra));
    expect(!r.ok && r.errors.join('\n')).toContain(message);
  });

  it('accepts sizes up to the agent limit in every unit, and the agent applies them', () => {
    for (const size of ['9007199254740991', '8796093022207Ki', '8589934591Mi', '8388607Gi', '8191Ti']) {
      const r = parseEmuvPolicy(policy({ hostSpillBudget: size, vramReservePerGpu: size }));
      expect(r.ok ? [] : r.errors, size).toEqual([]);
      if (r.ok) expect(() => parseNodeConfig(r.value.spec), size).not.toThrow();
    }
  });

  it('the size-max CEL rule is built from the agent limit, for each unit', () => {
    expect(sizeMaxRule(MAX_NODE_SIZE_BYTES)).toContain(
      "self.endsWith('Ti') ? (size(self) <= 6 && int(self.substring(0, size(self) - 2)) <= 8191)",
    );
    expect(sizeMaxRule(MAX_NODE_SIZE_BYTES)).toContain('(size(self) <= 16 && int(self) <= 9007199254740991)');
  });

  it('rejects garbage without throwing', () => {
    for (const g of [null, 42, 'x', [], { spec: { nodeSelector: { matchLabels: { a: 1 } } } }]) {
      expect(parseEmuvPolicy(g).ok).toBe(false);
    }
  });

  it('defaultedPolicySpec throws with the reason', () => {
    expect(() => defaultedPolicySpec({ slotsPerGpu: 129 })).toThrow(/slotsPerGpu: must be at most 128/);
  });
});

describe('parseEmuvNode', () => {
  it('requires the whole effective config', () => {
    const r = parseEmuvNode({ apiVersion: 'emuv.io/v1alpha1', kind: 'EmuvNode', metadata: { name: 'n' }, spec: { slotsPerGpu: 2 } });
    expect(!r.ok && r.errors.join('\n')).toContain('spec: field hostSpillBudget is required');
  });

  const nodeSpec = { hostSpillBudget: 'Auto', vramReservePerGpu: '512Mi', slotsPerGpu: 16, vramMode: 'Fill', spillBackend: 'Auto' };
  const emuvNode = (spec: unknown) => ({ apiVersion: 'emuv.io/v1alpha1', kind: 'EmuvNode', metadata: { name: 'n' }, spec });
  it('allocation is optional (older operators do not write it), enum-checked when present, and not defaulted', () => {
    const old = parseEmuvNode(emuvNode(nodeSpec));
    expect(old.ok && old.value.spec.allocation).toBeUndefined();
    const dra = parseEmuvNode(emuvNode({ ...nodeSpec, allocation: 'DRA' }));
    expect(dra.ok && dra.value.spec.allocation).toBe('DRA');
    expect(parseEmuvNode(emuvNode({ ...nodeSpec, allocation: 'Dra' }))).toEqual({
      ok: false,
      errors: ['spec.allocation: must be one of DevicePlugin, DRA (got "Dra")'],
    });
  });
});

describe('parseNodeConfig (the agent side of EmuvNode.spec)', () => {
  const base = { hostSpillBudget: '8Gi', vramReservePerGpu: '1Gi', slotsPerGpu: 4, vramMode: 'Fixed', spillBackend: 'Auto' };
  it('leaves allocation undefined when the EmuvNode has none, so the agent keeps its flag', () => {
    const c = parseNodeConfig(base);
    expect(c.allocation).toBeUndefined();
    expect('allocation' in c).toBe(false);
  });
  it.each(['DevicePlugin', 'DRA'] as const)('passes allocation %s through', (allocation) => {
    expect(parseNodeConfig({ ...base, allocation }).allocation).toBe(allocation);
  });
  it.each([['dra'], ['DevicePlugins'], [''], [1], [null]])('refuses allocation %j', (allocation) => {
    expect(() => parseNodeConfig({ ...base, allocation })).toThrow(/^allocation: expected DevicePlugin or DRA, got /);
  });
  it('the CRD and the agent agree: every allocation the schema admits, the agent parses', () => {
    for (const allocation of nodeSpecSchema.properties!.allocation!.enum!) {
      expect(parseNodeConfig({ ...base, allocation }).allocation).toBe(allocation);
    }
  });
});

describe('matchesSelector', () => {
  const labels = { gpu: 'a100', zone: 'z1' };
  it.each([
    ['undefined selector', undefined, true],
    ['empty selector', {}, true],
    ['matchLabels hit', { matchLabels: { gpu: 'a100' } }, true],
    ['matchLabels miss', { matchLabels: { gpu: 'l4' } }, false],
    ['In hit', { matchExpressions: [{ key: 'zone', operator: 'In' as const, values: ['z1', 'z2'] }] }, true],
    ['In on missing key', { matchExpressions: [{ key: 'rack', operator: 'In' as const, values: ['r'] }] }, false],
    ['NotIn on missing key', { matchExpressions: [{ key: 'rack', operator: 'NotIn' as const, values: ['r'] }] }, true],
    ['NotIn hit', { matchExpressions: [{ key: 'gpu', operator: 'NotIn' as const, values: ['a100'] }] }, false],
    ['Exists', { matchExpressions: [{ key: 'gpu', operator: 'Exists' as const }] }, true],
    ['DoesNotExist', { matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' as const }] }, false],
    [
      'both must hold',
      { matchLabels: { gpu: 'a100' }, matchExpressions: [{ key: 'zone', operator: 'In' as const, values: ['z9'] }] },
      false,
    ],
  ])('%s', (_n, sel, want) => {
    expect(matchesSelector(sel, labels)).toBe(want);
  });
});

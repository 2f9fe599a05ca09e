import { describe, expect, it } from 'vitest';
import { humanBytes, parseNodeConfig, SPILL_BACKEND_VALUES } from '../../common/contracts/emuv-node.ts';
import { discoveredGpu } from '../../test/fixtures/gpus.ts';
import { SPILL_BACKENDS } from '../../common/contracts/interposer.ts';
import { DEFAULT_CAPACITY_CONFIG, GiB, MiB, validateCapacityConfig } from '../inventory/capacity.ts';
import { buildInventory } from '../inventory/inventory.ts';
import { applyNodeConfig, emuvNodeStatus, SPILL_BACKEND_MODE } from './emuv-node.ts';

const spec = (over: Record<string, unknown> = {}) =>
  parseNodeConfig({
    hostSpillBudget: '8Gi',
    vramReservePerGpu: '1Gi',
    slotsPerGpu: 4,
    vramMode: 'Fixed',
    spillBackend: 'Auto',
    ...over,
  });

describe('applyNodeConfig', () => {
  it('lays every field of EmuvNode.spec over the flags, in the interposer contract’s spelling', () => {
    const flags = { ...DEFAULT_CAPACITY_CONFIG, spillBackend: 'pinned' as const };
    expect(applyNodeConfig(flags, spec({ spillBackend: 'Managed' }))).toEqual({
      reserveBytes: 1 * GiB,
      hostBudget: { kind: 'bytes', bytes: 8 * GiB },
      slotsPerGpu: 4,
      vramMode: 'fixed',
      spillBackend: 'managed',
    });
    // The spec wins over the flag in both directions, Auto included.
    expect(applyNodeConfig(flags, spec()).spillBackend).toBe('auto');
    expect(flags.spillBackend).toBe('pinned'); // the flags' configuration is not modified
  });

  it.each([
    ['Auto', 'auto'],
    ['Pinned', 'pinned'],
    ['Managed', 'managed'],
  ] as const)('spillBackend %s -> EMUV_SPILL_BACKEND=%s', (crd, contract) => {
    const cfg = applyNodeConfig({ ...DEFAULT_CAPACITY_CONFIG, reserveBytes: 256 * MiB }, spec({ spillBackend: crd }));
    expect(cfg.spillBackend).toBe(contract);
    expect(validateCapacityConfig(cfg)).toEqual([]);
  });

  it('maps every CRD value, onto every contract value', () => {
    expect(Object.keys(SPILL_BACKEND_MODE).sort()).toEqual([...SPILL_BACKEND_VALUES].sort());
    expect(new Set(Object.values(SPILL_BACKEND_MODE))).toEqual(new Set(SPILL_BACKENDS));
  });
});

describe('emuvNodeStatus on a DRA node', () => {
  const discovery = { gpus: [], hostMemoryBytes: 32 * GiB, driverVersion: null, nvml: false, problems: [] };
  const inventory = buildInventory(discovery, DEFAULT_CAPACITY_CONFIG);
  const status = (over: Partial<Parameters<typeof emuvNodeStatus>[0]>) =>
    emuvNodeStatus({ discovery, inventory, usage: null, generation: 2, specError: null, previous: undefined, now: new Date(0), ...over });
  const ready = (s: Record<string, unknown>) => (s.conditions as { reason: string; status: string; message: string }[])[0]!;

  it('says the memory is published over DRA, and is not Ready while the ResourceSlice is not published', () => {
    expect(ready(status({}))).toMatchObject({
      status: 'True',
      reason: 'SpecApplied',
      message: expect.stringContaining('emuv.io/vram-virtual'),
    });
    expect(ready(status({ devicePlugin: false }))).toMatchObject({ status: 'True', message: expect.stringContaining('over DRA') });
    expect(ready(status({ devicePlugin: false, sliceError: 'apiserver down' }))).toMatchObject({
      status: 'False',
      reason: 'ResourceSliceNotPublished',
      message: 'ResourceSlice not published: apiserver down',
    });
    // A slice error is the DRA path's: a device-plugin node ignores it; an invalid spec says so first.
    expect(ready(status({ sliceError: 'x' })).reason).toBe('SpecApplied');
    expect(ready(status({ devicePlugin: false, sliceError: 'x', specError: 'bad spec' })).reason).toBe('InvalidSpec');
  });
});

describe('sizes for people', () => {
  it('writes bytes in the largest binary unit with at most one decimal', () => {
    expect([0, 1000, 1024, 512 * MiB, 7.5 * GiB, 28 * GiB, 31.5 * GiB, 12.34 * GiB, 3 * 1024 * GiB].map(humanBytes)).toEqual([
      '0',
      '1000',
      '1Ki',
      '512Mi',
      '7.5Gi',
      '28Gi',
      '31.5Gi',
      '12.3Gi',
      '3Ti',
    ]);
  });

  it('puts them in status.summary beside the byte fields', () => {
    const gpus = [discoveredGpu('0000:01:00.0', { vramGiB: 8 })];
    const discovery = { gpus, hostMemoryBytes: 48 * GiB, driverVersion: null, nvml: false, problems: [] };
    const inventory = buildInventory(discovery, DEFAULT_CAPACITY_CONFIG);
    const s = emuvNodeStatus({ discovery, inventory, usage: null, generation: 1, specError: null, previous: undefined, now: new Date(0) });
    expect(s.summary).toEqual({ vram: '7.5Gi', virtual: '31.5Gi', committed: '0', used: '0', spillInUse: '0', spillBudget: '24Gi' });
    expect((s.capacity as { virtual: string }).virtual).toBe(String(31.5 * GiB));
  });
});

import { describe, expect, it } from 'vitest';
import { parseNodeConfig, SPILL_BACKEND_VALUES } from '../../common/contracts/emuv-node.ts';
import { SPILL_BACKENDS } from '../../common/contracts/interposer.ts';
import { DEFAULT_CAPACITY_CONFIG, GiB, MiB, validateCapacityConfig } from '../inventory/capacity.ts';
import { applyNodeConfig, SPILL_BACKEND_MODE } from './emuv-node.ts';

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

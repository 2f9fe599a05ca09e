import { describe, expect, it } from 'vitest';
import type { DiscoveredGpu, NodeDiscovery } from '../discovery/types.ts';
import {
  DEFAULT_CAPACITY_CONFIG,
  GiB,
  hostBudgetBytes,
  MiB,
  slotVramShare,
  spillBackendOf,
  validateCapacityConfig,
  type CapacityConfig,
} from './capacity.ts';
import { buildInventory, slotId } from './inventory.ts';

function gpu(address: string, vramBytes: number | null, over: Partial<DiscoveredGpu> = {}): DiscoveredGpu {
  return {
    pci: {
      address,
      vendorId: 0x10de,
      deviceId: 0x2882,
      subsystemVendorId: null,
      subsystemDeviceId: null,
      classCode: 0x030000,
      numaNode: -1,
      driver: 'nvidia',
      link: { speed: null, gtPerSec: null, width: null, bandwidthBytesPerSec: null },
    },
    uuid: null,
    name: 'NVIDIA GeForce RTX 4060',
    minor: 0,
    vramBytes,
    vramSource: vramBytes === null ? null : 'flag',
    driverInfoSource: null,
    offered: vramBytes !== null,
    reason: vramBytes === null ? 'VRAM size unknown' : null,
    ...over,
  };
}

const node = (gpus: DiscoveredGpu[], hostMemoryBytes: number | null): NodeDiscovery => ({
  gpus,
  hostMemoryBytes,
  driverVersion: null,
  nvml: false,
  problems: [],
});
const cfg = (over: Partial<CapacityConfig> = {}): CapacityConfig => ({ ...DEFAULT_CAPACITY_CONFIG, ...over });

describe('host spill budget', () => {
  it.each([
    ['auto, 32 GiB: half', 32 * GiB, { kind: 'auto' } as const, 16 * GiB],
    ['auto, 12 GiB: MemTotal - 8 GiB is smaller', 12 * GiB, { kind: 'auto' } as const, 4 * GiB],
    ['auto, tiny 4 GiB host: floored at 0', 4 * GiB, { kind: 'auto' } as const, 0],
    ['auto, exactly 8 GiB: 0', 8 * GiB, { kind: 'auto' } as const, 0],
    ['auto, 16 GiB: both rules give 8 GiB', 16 * GiB, { kind: 'auto' } as const, 8 * GiB],
    ['auto, huge 4 TiB host: half', 4096 * GiB, { kind: 'auto' } as const, 2048 * GiB],
    ['percent 40 of 100 GiB', 100 * GiB, { kind: 'percent', percent: 40 } as const, 40 * GiB],
    ['bytes override', 64 * GiB, { kind: 'bytes', bytes: 20 * GiB } as const, 20 * GiB],
    ['bytes above MemTotal: clamped to MemTotal', 16 * GiB, { kind: 'bytes', bytes: 20 * GiB } as const, 16 * GiB],
    ['unknown MemTotal: 0', null, { kind: 'auto' } as const, 0],
  ])('%s', (_name, mem, budget, expected) => {
    expect(hostBudgetBytes(mem, budget)).toBe(expected);
  });
});

describe('inventory arithmetic', () => {
  it.each([
    {
      name: 'one 8 GiB GPU, 32 GiB host: 7.5 GiB usable + 16 GiB spill',
      n: node([gpu('0000:01:00.0', 8 * GiB)], 32 * GiB),
      c: cfg(),
      vramVirtual: 7.5 * GiB + 16 * GiB,
      vgpu: 16,
    },
    { name: '0 GPUs: nothing, not even host spill', n: node([], 512 * GiB), c: cfg(), vramVirtual: 0, vgpu: 0 },
    {
      name: 'GPU with unknown VRAM is not offered',
      n: node([gpu('0000:01:00.0', null), gpu('0000:02:00.0', 16 * GiB)], 64 * GiB),
      c: cfg(),
      vramVirtual: 15.5 * GiB + 32 * GiB,
      vgpu: 16,
    },
    {
      name: 'two 80 GiB GPUs, huge RAM, 8 slots, 1 GiB reserve',
      n: node([gpu('0000:17:00.0', 80 * GiB), gpu('0000:65:00.0', 80 * GiB)], 2048 * GiB),
      c: cfg({ slotsPerGpu: 8, reserveBytes: 1 * GiB }),
      vramVirtual: 2 * 79 * GiB + 1024 * GiB,
      vgpu: 16,
    },
    {
      name: 'tiny RAM (6 GiB): VRAM only',
      n: node([gpu('0000:01:00.0', 8 * GiB)], 6 * GiB),
      c: cfg(),
      vramVirtual: 7.5 * GiB,
      vgpu: 16,
    },
    {
      name: 'VRAM not above the reserve: GPU not offered, no spill either',
      n: node([gpu('0000:01:00.0', 256 * MiB)], 64 * GiB),
      c: cfg(),
      vramVirtual: 0,
      vgpu: 0,
    },
    {
      name: 'vfio-bound GPU is not offered',
      n: node([gpu('0000:01:00.0', 24 * GiB, { offered: false, reason: 'bound to vfio-pci' })], 64 * GiB),
      c: cfg(),
      vramVirtual: 0,
      vgpu: 0,
    },
    {
      name: 'reserve 0 and host budget 0: exactly the VRAM',
      n: node([gpu('0000:01:00.0', 12 * GiB)], 64 * GiB),
      c: cfg({ reserveBytes: 0, hostBudget: { kind: 'bytes', bytes: 0 } }),
      vramVirtual: 12 * GiB,
      vgpu: 16,
    },
  ])('$name', ({ n, c, vramVirtual, vgpu }) => {
    const inv = buildInventory(n, c);
    expect(inv.vramVirtualBytes).toBe(vramVirtual);
    expect(inv.vgpuCount).toBe(vgpu);
    expect(inv.vramVirtualBytes).toBe(inv.usableVramBytes + inv.hostBudgetBytes);
  });

  it('names slots after their GPU, valid device IDs under 64 characters', () => {
    const inv = buildInventory(node([gpu('0000:af:1f.7', 8 * GiB)], 32 * GiB), cfg({ slotsPerGpu: 128 }));
    const ids = inv.gpus[0]!.slots.map((s) => s.id);
    expect(ids[0]).toBe('gpu-0000-af-1f-7-s00');
    expect(ids[127]).toBe('gpu-0000-af-1f-7-s127');
    expect(new Set(ids).size).toBe(128);
    expect(ids.every((id) => /^[a-z0-9-]{1,63}$/.test(id))).toBe(true);
    expect(slotId('0000:01:00.0', 3)).toBe('gpu-0000-01-00-0-s03');
  });

  it('carries the spill backend to every offered GPU; a configuration without one means auto', () => {
    const n = node([gpu('0000:01:00.0', 8 * GiB), gpu('0000:02:00.0', 8 * GiB)], 32 * GiB);
    expect(DEFAULT_CAPACITY_CONFIG.spillBackend).toBe('auto');
    expect(buildInventory(n, cfg()).gpus.map((g) => g.spillBackend)).toEqual(['auto', 'auto']);
    expect(buildInventory(n, cfg({ spillBackend: 'managed' })).gpus.map((g) => g.spillBackend)).toEqual(['managed', 'managed']);
    const { spillBackend: _, ...older } = cfg(); // built before CapacityConfig had the field
    expect(buildInventory(n, older).gpus.map((g) => g.spillBackend)).toEqual(['auto', 'auto']);
    expect(spillBackendOf({})).toBe('auto');
    expect(spillBackendOf({ spillBackend: 'pinned' })).toBe('pinned');
  });
});

describe('slot VRAM share', () => {
  it.each([
    ['fill: the whole usable card', 7.5 * GiB, 16, 'fill', 7.5 * GiB],
    ['fixed: usable / slots, rounded down to 2 MiB', 7.5 * GiB, 16, 'fixed', 480 * MiB],
    ['fixed: 1 GiB / 3 slots rounds down to 340 MiB', 1 * GiB, 3, 'fixed', 340 * MiB],
    ['fixed: 1 slot gets the card', 10 * GiB, 1, 'fixed', 10 * GiB],
  ] as const)('%s', (_n, usable, slots, mode, expected) => {
    expect(slotVramShare(usable, { slotsPerGpu: slots, vramMode: mode })).toBe(expected);
  });
});

describe('configuration validation', () => {
  it('accepts the defaults and names each bad field', () => {
    expect(validateCapacityConfig(DEFAULT_CAPACITY_CONFIG)).toEqual([]);
    const errors = validateCapacityConfig({
      reserveBytes: -1,
      slotsPerGpu: 0,
      hostBudget: { kind: 'percent', percent: 150 },
      vramMode: 'burst' as never,
      spillBackend: 'Managed' as never, // the CRD's spelling is not the contract's
    });
    expect(errors).toHaveLength(5);
    expect(errors.join('\n')).toMatch(/reserve[\s\S]*slots[\s\S]*percent[\s\S]*mode[\s\S]*spill backend must be auto, pinned, managed/);
    expect(validateCapacityConfig({ ...DEFAULT_CAPACITY_CONFIG, spillBackend: 'pinned' })).toEqual([]);
    // The percent bound is the host-spill grammar's (90 %), the same as the flag's and the CRD's.
    const at = (percent: number) => validateCapacityConfig({ ...DEFAULT_CAPACITY_CONFIG, hostBudget: { kind: 'percent', percent } });
    expect([at(90), at(91)]).toEqual([[], ['host spill budget percent must be from 0 to 90']]);
  });
});

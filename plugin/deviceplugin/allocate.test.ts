import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../common/errors.ts';
import { DEFAULT_CAPACITY_CONFIG, GiB } from '../inventory/capacity.ts';
import { buildInventory, type Inventory } from '../inventory/inventory.ts';
import type { DiscoveredGpu } from '../discovery/types.ts';
import { discoveredGpu } from '../../test/fixtures/gpus.ts';
import { allocIdFor, buildContainerResponse, resolveGrant } from './allocate.ts';
import { preferAllocation } from './preferred.ts';

/** A 16 GiB GPU; minor and UUID null where the driver did not say. */
const gpu = (address: string, minor: number | null, uuid: string | null): DiscoveredGpu => ({
  ...discoveredGpu(address, { vramGiB: 16, name: 'GPU' }),
  minor,
  uuid,
});

const inv: Inventory = buildInventory(
  {
    gpus: [gpu('0000:01:00.0', 0, 'GPU-aaaaaaaa-0000-4000-8000-000000000001'), gpu('0000:02:00.0', null, null)],
    hostMemoryBytes: 64 * GiB,
    driverVersion: null,
    nvml: false,
    problems: [],
  },
  { ...DEFAULT_CAPACITY_CONFIG, slotsPerGpu: 4 },
);
const env = {
  existingDevNodes: new Set(['nvidiactl', 'nvidia-uvm', 'nvidia0']),
  hostDevDir: '/dev',
  interposer: null,
  stateDir: '/run/emuv',
};

describe('resolveGrant', () => {
  it.each([
    [[], 'no device IDs in the container request'],
    [['x', 'gpu-0000-01-00-0-s00', 'y'], 'unknown device IDs: x, y'],
    [['gpu-0000-01-00-0-s01', 'gpu-0000-01-00-0-s01'], 'device IDs requested twice: gpu-0000-01-00-0-s01'],
    [['gpu-0000-01-00-0-s00', 'gpu-0000-02-00-0-s00'], 'device IDs span GPUs'],
  ])('%j -> %s', (ids, message) => {
    expect(() => resolveGrant(ids, inv)).toThrow(InvalidRequestError);
    expect(() => resolveGrant(ids, inv)).toThrow(message);
  });

  it('derives one allocation ID from the IDs, whatever their order', () => {
    expect(allocIdFor(['gpu-0000-01-00-0-s03'])).toBe('gpu-0000-01-00-0-s03');
    const a = allocIdFor(['gpu-0000-01-00-0-s01', 'gpu-0000-01-00-0-s00']);
    expect(a).toBe(allocIdFor(['gpu-0000-01-00-0-s00', 'gpu-0000-01-00-0-s01']));
    expect(a).toMatch(/^gpu-0000-01-00-0-s00-n2-[0-9a-f]{12}$/);
  });
});

describe('buildContainerResponse', () => {
  it('names the GPU by PCI address when its UUID is unknown, and gives no /dev/nvidia<minor> without a minor', () => {
    const r = buildContainerResponse(resolveGrant(['gpu-0000-02-00-0-s00'], inv), env);
    expect(r.envs!.EMUV_GPU).toBe('0000:02:00.0');
    expect(r.envs!.NVIDIA_VISIBLE_DEVICES).toBeUndefined();
    expect(r.devices!.map((d) => d.container_path)).toEqual(['/dev/nvidiactl', '/dev/nvidia-uvm']);
  });

  it('tells the interposer the node’s spill backend in EMUV_SPILL_BACKEND, auto included', () => {
    const g = resolveGrant(['gpu-0000-01-00-0-s00'], inv);
    expect(buildContainerResponse(g, env).envs!.EMUV_SPILL_BACKEND).toBe('auto');
    for (const backend of ['pinned', 'managed'] as const) {
      const other = buildInventory(
        { gpus: [gpu('0000:01:00.0', 0, null)], hostMemoryBytes: 64 * GiB, driverVersion: null, nvml: false, problems: [] },
        { ...DEFAULT_CAPACITY_CONFIG, spillBackend: backend },
      );
      const envs = buildContainerResponse(resolveGrant(['gpu-0000-01-00-0-s03'], other), env).envs!;
      expect(envs.EMUV_SPILL_BACKEND).toBe(backend);
      expect(envs.EMUV_VRAM_MODE).toBe('fill'); // the other contract variables are unchanged by it
    }
  });

  it('is pure: same input, same output', () => {
    const g = resolveGrant(['gpu-0000-01-00-0-s00'], inv);
    expect(buildContainerResponse(g, env)).toEqual(buildContainerResponse(g, env));
  });
});

describe('preferAllocation', () => {
  const ids = (gpuN: number, ...slots: number[]) => slots.map((s) => `gpu-0000-0${gpuN}-00-0-s0${s}`);
  it.each([
    ['most free slots wins', [...ids(1, 0, 1), ...ids(2, 0, 1, 2)], [], 2, ids(2, 0, 1)],
    ['tie: lowest address', [...ids(1, 0, 1), ...ids(2, 0, 1)], [], 1, ids(1, 0)],
    ['must-include pins the GPU', [...ids(1, 0, 1, 2, 3), ...ids(2, 0, 1)], ids(2, 1), 2, [...ids(2, 1), ...ids(2, 0)]],
    ['no GPU has enough: just the must-include', [...ids(1, 0), ...ids(2, 0)], [], 2, []],
    ['unknown IDs are ignored', ['bogus', ...ids(1, 3)], [], 1, ids(1, 3)],
  ])('%s', (_name, available, mustInclude, size, expected) => {
    expect(preferAllocation({ available, mustInclude, size }, inv)).toEqual(expected);
  });
});

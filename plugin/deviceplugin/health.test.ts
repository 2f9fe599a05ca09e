import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renameSync, rmSync } from 'node:fs';
import { copyNodeFixture, tempDir } from '../../localcluster/repo.ts';
import type { Nvml } from '../discovery/nvml.ts';
import { discoverNode } from '../discovery/discover.ts';
import { DEFAULT_CAPACITY_CONFIG } from '../inventory/capacity.ts';
import { buildInventory } from '../inventory/inventory.ts';
import { probeHealth } from './health.ts';
import { DeviceState } from './device-state.ts';

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => (tmp = tempDir()));
afterEach(() => tmp.cleanup());

function setup() {
  const roots = copyNodeFixture('two-gpus-numa', tmp.path);
  const node = discoverNode({
    sysRoot: roots.sys,
    procRoot: roots.proc,
    nvml: null,
    gpuMemory: new Map([
      ['0000:17:00.0', 80 * 2 ** 30],
      ['0000:65:00.0', 80 * 2 ** 30],
    ]),
  });
  return { roots, inv: buildInventory(node, DEFAULT_CAPACITY_CONFIG) };
}

describe('probeHealth', () => {
  it('judges each GPU on its own PCI device, device node and NVML', () => {
    const { roots, inv } = setup();
    const lost = new Set<string>();
    const nvml: Nvml = { gpus: () => [], isLost: (a) => lost.has(a), close: () => {} };
    const look = () =>
      Object.fromEntries([...probeHealth(inv, { sysRoot: roots.sys, devRoot: roots.dev }, nvml)].map(([a, h]) => [a, h.reason]));
    expect(look()).toEqual({ '0000:17:00.0': null, '0000:65:00.0': null });
    rmSync(join(roots.dev, 'nvidia1'));
    expect(look()).toEqual({ '0000:17:00.0': null, '0000:65:00.0': '/dev/nvidia1 disappeared' });
    renameSync(join(roots.sys, 'bus/pci/devices/0000:17:00.0'), join(roots.sys, 'gone'));
    lost.add('0000:65:00.0');
    expect(look()).toEqual({ '0000:17:00.0': 'PCI device disappeared', '0000:65:00.0': '/dev/nvidia1 disappeared' });
    renameSync(join(roots.sys, 'gone'), join(roots.sys, 'bus/pci/devices/0000:17:00.0'));
    expect(look()['0000:17:00.0']).toBeNull();
    lost.add('0000:17:00.0');
    expect(look()['0000:17:00.0']).toBe('NVML reports the GPU lost');
  });

  it('notifies ListAndWatch subscribers only when health actually changes', () => {
    const { roots, inv } = setup();
    const state = new DeviceState(inv);
    let notified = 0;
    state.subscribe(() => notified++);
    const probe = () => state.setHealth(probeHealth(inv, { sysRoot: roots.sys, devRoot: roots.dev }, null));
    expect(probe()).toBe(false);
    rmSync(join(roots.dev, 'nvidia0'));
    expect(probe()).toBe(true);
    expect(probe()).toBe(false);
    expect(notified).toBe(1);
    expect(state.devices.filter((d) => d.health === 'Unhealthy')).toHaveLength(16);
    expect(Object.isFrozen(state.devices)).toBe(true);
  });
});

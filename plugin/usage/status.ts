/**
 * The agent's `/status` document, `emuv.io/status/v1` (pure): what the node offers and what every
 * emuv container uses right now. Read by `emuv status` and `emuv top`; fields are only added within
 * a version.
 */
import type { GpuHealth } from '../deviceplugin/device-state.ts';
import type { Inventory } from '../inventory/inventory.ts';
import type { ContainerUsage } from './collector.ts';

export const STATUS_API_VERSION = 'emuv.io/status/v1';

export interface StatusDocument {
  apiVersion: typeof STATUS_API_VERSION;
  node: string | null;
  time: string;
  gpus: {
    address: string;
    name: string | null;
    uuid: string | null;
    vramBytes: number;
    usableVramBytes: number;
    slots: number;
    healthy: boolean;
    reason: string | null;
    /** Sum over this GPU's containers. */
    vramUsedBytes: number;
    hostUsedBytes: number;
    committedBytes: number;
  }[];
  capacity: { vramVirtualBytes: number; vgpu: number; hostBudgetBytes: number; hostUsedBytes: number; committedBytes: number };
  containers: ContainerUsage[];
}

export function buildStatus(opts: {
  node: string | null;
  now: Date;
  inventory: Inventory;
  health: (address: string) => GpuHealth;
  containers: readonly ContainerUsage[];
}): StatusDocument {
  const { inventory } = opts;
  const onGpu = (g: Inventory['gpus'][number]) => opts.containers.filter((c) => c.gpu === g.uuid || c.gpu === g.address);
  const sum = (cs: readonly ContainerUsage[], f: (c: ContainerUsage) => number) => cs.reduce((a, c) => a + f(c), 0);
  return {
    apiVersion: STATUS_API_VERSION,
    node: opts.node,
    time: opts.now.toISOString(),
    gpus: inventory.gpus.map((g) => {
      const cs = onGpu(g);
      const h = opts.health(g.address);
      return {
        address: g.address,
        name: g.name,
        uuid: g.uuid,
        vramBytes: g.vramBytes,
        usableVramBytes: g.usableVramBytes,
        slots: g.slots.length,
        healthy: h.healthy,
        reason: h.reason,
        vramUsedBytes: sum(cs, (c) => c.vramUsedBytes),
        hostUsedBytes: sum(cs, (c) => c.hostUsedBytes),
        committedBytes: sum(cs, (c) => c.limitBytes),
      };
    }),
    capacity: {
      vramVirtualBytes: inventory.vramVirtualBytes,
      vgpu: inventory.vgpuCount,
      hostBudgetBytes: inventory.hostBudgetBytes,
      hostUsedBytes: sum(opts.containers, (c) => c.hostUsedBytes),
      committedBytes: sum(opts.containers, (c) => c.limitBytes),
    },
    containers: [...opts.containers],
  };
}

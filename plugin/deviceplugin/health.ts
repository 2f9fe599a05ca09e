/**
 * GPU health probe: a GPU is unhealthy when its PCI device directory disappears, when its
 * /dev/nvidia<minor> disappears, or when NVML reports it lost. Checked by polling (cheap stat calls),
 * so a change reaches the ListAndWatch stream within one poll interval.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Nvml } from '../discovery/nvml.ts';
import type { Inventory } from '../inventory/inventory.ts';
import type { GpuHealth } from './device-state.ts';

export interface HealthRoots {
  sysRoot: string;
  devRoot: string;
}

export function probeHealth(inventory: Inventory, roots: HealthRoots, nvml: Nvml | null): Map<string, GpuHealth> {
  const out = new Map<string, GpuHealth>();
  for (const gpu of inventory.gpus) {
    let reason: string | null = null;
    if (!existsSync(join(roots.sysRoot, 'bus', 'pci', 'devices', gpu.address))) reason = 'PCI device disappeared';
    else if (gpu.minor !== null && !existsSync(join(roots.devRoot, `nvidia${gpu.minor}`))) reason = `/dev/nvidia${gpu.minor} disappeared`;
    else if (nvml?.isLost(gpu.address)) reason = 'NVML reports the GPU lost';
    out.set(gpu.address, { healthy: reason === null, reason });
  }
  return out;
}

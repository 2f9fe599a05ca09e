/**
 * The node's capacity as gauges: GPUs found (offered or not), the published emuv.io/vram-virtual, the
 * host spill budget and each offered GPU's VRAM. Set at start and again whenever an EmuvNode's spec
 * rebuilds the inventory, so /metrics always shows what the kubelet and the Node were last told.
 */
import type { Inventory } from '../inventory/inventory.ts';
import type { AgentMetrics } from './definitions.ts';

export function setCapacityMetrics(metrics: AgentMetrics, inventory: Inventory, discoveredGpus: number): void {
  metrics.gpus.set({ offered: 'true' }, inventory.gpus.length);
  metrics.gpus.set({ offered: 'false' }, discoveredGpus - inventory.gpus.length);
  metrics.vramVirtualBytes.set(inventory.vramVirtualBytes);
  metrics.hostBudgetBytes.set(inventory.hostBudgetBytes);
  // A GPU the new inventory no longer offers must not keep its old series.
  metrics.gpuVramBytes.reset();
  for (const g of inventory.gpus) metrics.gpuVramBytes.set({ gpu: g.address }, g.vramBytes);
}

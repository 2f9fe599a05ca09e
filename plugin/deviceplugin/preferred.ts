/**
 * GetPreferredAllocation (pure): all slots of one container on one GPU, on the GPU with the most
 * free slots (ties: lowest PCI address), must-include IDs first. The kubelet may ignore the answer,
 * and Allocate still rejects requests that span GPUs.
 */
import type { Inventory } from '../inventory/inventory.ts';

export interface PreferredRequest {
  available: readonly string[];
  mustInclude: readonly string[];
  size: number;
}

export function preferAllocation(req: PreferredRequest, inventory: Inventory): string[] {
  const gpuOf = new Map<string, string>();
  const indexOf = new Map<string, number>();
  for (const g of inventory.gpus)
    for (const s of g.slots) {
      gpuOf.set(s.id, g.address);
      indexOf.set(s.id, s.index);
    }
  const free = new Map<string, string[]>();
  for (const id of new Set(req.available)) {
    const gpu = gpuOf.get(id);
    if (gpu === undefined) continue;
    free.set(gpu, [...(free.get(gpu) ?? []), id]);
  }
  const mustGpus = new Set(req.mustInclude.map((id) => gpuOf.get(id)).filter((g) => g !== undefined));
  const candidates = [...free.entries()]
    .filter(([gpu, ids]) => (mustGpus.size === 0 || mustGpus.has(gpu)) && ids.length >= req.size)
    .sort(([ga, a], [gb, b]) => b.length - a.length || (ga < gb ? -1 : 1));
  const chosen = candidates[0];
  if (!chosen || mustGpus.size > 1) return [...req.mustInclude];
  const [, ids] = chosen;
  const rest = ids.filter((id) => !req.mustInclude.includes(id)).sort((a, b) => indexOf.get(a)! - indexOf.get(b)!);
  return [...req.mustInclude, ...rest].slice(0, Math.max(req.size, req.mustInclude.length));
}

import { describe, expect, it } from 'vitest';
import type { Inventory } from '../inventory/inventory.ts';
import { setCapacityMetrics } from './capacity.ts';
import { createAgentMetrics, Registry } from './definitions.ts';

const GiB = 1024 ** 3;
const inventory = (gpus: { address: string; vramBytes: number }[], budget: number): Inventory =>
  ({
    gpus,
    hostMemoryBytes: 64 * GiB,
    hostBudgetBytes: budget,
    usableVramBytes: 0,
    vramVirtualBytes: gpus.reduce((a, g) => a + g.vramBytes, budget),
    vgpuCount: 16 * gpus.length,
    vramMode: 'fill',
  }) as unknown as Inventory;

describe('setCapacityMetrics', () => {
  it('publishes the inventory, and a rebuilt inventory replaces it (no stale GPU series)', async () => {
    const metrics = createAgentMetrics(new Registry());
    setCapacityMetrics(
      metrics,
      inventory(
        [
          { address: '0000:01:00.0', vramBytes: 8 * GiB },
          { address: '0000:02:00.0', vramBytes: 8 * GiB },
        ],
        16 * GiB,
      ),
      3,
    );
    let text = await metrics.registry.metrics();
    expect(text).toContain('emuv_gpus{offered="true"} 2');
    expect(text).toContain('emuv_gpus{offered="false"} 1');
    expect(text).toContain(`emuv_node_vram_virtual_bytes ${32 * GiB}`);
    expect(text).toContain(`emuv_node_host_spill_budget_bytes ${16 * GiB}`);
    expect(text).toContain(`emuv_gpu_vram_total_bytes{gpu="0000:02:00.0"} ${8 * GiB}`);

    setCapacityMetrics(metrics, inventory([{ address: '0000:01:00.0', vramBytes: 8 * GiB }], 0), 3);
    text = await metrics.registry.metrics();
    expect(text).toContain('emuv_gpus{offered="false"} 2');
    expect(text).not.toContain('gpu="0000:02:00.0"');
    expect(text).toContain(`emuv_node_vram_virtual_bytes ${8 * GiB}`);
  });
});

/**
 * Every metric the agent exports, defined in one place, registered on an injected registry (no
 * global default registry). Base units, bounded labels.
 */
import { Counter, Gauge, Registry } from 'prom-client';

export function createAgentMetrics(registry: Registry) {
  return {
    registry,
    gpus: new Gauge({
      name: 'emuv_gpus',
      help: 'GPUs found on the node, by whether they are offered',
      labelNames: ['offered'],
      registers: [registry],
    }),
    vramVirtualBytes: new Gauge({
      name: 'emuv_node_vram_virtual_bytes',
      help: 'emuv.io/vram-virtual published for this node',
      registers: [registry],
    }),
    hostBudgetBytes: new Gauge({ name: 'emuv_node_host_spill_budget_bytes', help: 'Host RAM offered for spill', registers: [registry] }),
    gpuVramBytes: new Gauge({
      name: 'emuv_gpu_vram_total_bytes',
      help: 'Physical VRAM per GPU',
      labelNames: ['gpu'],
      registers: [registry],
    }),
    gpuHealthy: new Gauge({ name: 'emuv_gpu_healthy', help: '1 when the GPU is healthy', labelNames: ['gpu'], registers: [registry] }),
    allocations: new Counter({
      name: 'emuv_allocations_total',
      help: 'Allocate calls by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    registrations: new Counter({
      name: 'emuv_plugin_registrations_total',
      help: 'Successful registrations with the kubelet',
      registers: [registry],
    }),
    restarts: new Counter({
      name: 'emuv_plugin_restarts_total',
      help: 'Device plugin restarts (kubelet restart, socket removed)',
      registers: [registry],
    }),
    nodeStatusPatches: new Counter({
      name: 'emuv_node_status_patches_total',
      help: 'Patches of node status or labels',
      registers: [registry],
    }),
    nodeStatusErrors: new Counter({ name: 'emuv_node_status_errors_total', help: 'Failed node status reconciles', registers: [registry] }),
  };
}

export type AgentMetrics = ReturnType<typeof createAgentMetrics>;
export { Registry };

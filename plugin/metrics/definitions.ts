/**
 * Every metric the agent exports, defined in one place, registered on an injected registry (no
 * global default registry). Base units, bounded labels.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { StatusDocument } from '../usage/status.ts';

const CONTAINER_LABELS = ['namespace', 'pod', 'container', 'gpu'] as const;

/**
 * Metrics read from the latest status document at scrape time: each scrape resets the series and
 * sets them again, so a container that is gone disappears from /metrics instead of going stale.
 */
function usageMetrics(registry: Registry, latest: () => StatusDocument | null) {
  type C = StatusDocument['containers'][number];
  const labels = (c: C) => ({
    namespace: c.owner?.namespace ?? '',
    pod: c.owner?.pod ?? '',
    container: c.owner?.container ?? '',
    gpu: c.gpu ?? '',
  });
  const perContainer = (name: string, help: string, value: (c: C) => number, kind: 'gauge' | 'counter') => {
    const Ctor = kind === 'gauge' ? Gauge : Counter;
    return new Ctor({
      name,
      help,
      labelNames: CONTAINER_LABELS,
      registers: [registry],
      collect() {
        this.reset();
        for (const c of latest()?.containers ?? []) {
          if (c.error) continue;
          if (this instanceof Gauge) this.set(labels(c), value(c));
          else (this as Counter).inc(labels(c), value(c));
        }
      },
    });
  };
  const perGpu = (name: string, help: string, value: (g: StatusDocument['gpus'][number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['gpu'],
      registers: [registry],
      collect() {
        this.reset();
        for (const g of latest()?.gpus ?? []) this.set({ gpu: g.address }, value(g));
      },
    });
  return [
    perContainer('emuv_container_limit_bytes', 'Virtual memory limit of the container (EMUV_LIMIT_BYTES)', (c) => c.limitBytes, 'gauge'),
    perContainer('emuv_container_vram_used_bytes', 'VRAM the container uses now', (c) => c.vramUsedBytes, 'gauge'),
    perContainer('emuv_container_host_spill_bytes', 'Host RAM the container has spilled to now', (c) => c.hostUsedBytes, 'gauge'),
    perContainer('emuv_container_vram_peak_bytes', 'Peak VRAM of the container', (c) => c.vramPeakBytes, 'gauge'),
    perContainer('emuv_container_host_spill_peak_bytes', 'Peak host spill of the container', (c) => c.hostPeakBytes, 'gauge'),
    perContainer('emuv_container_spill_events_total', 'Allocations that spilled to host RAM', (c) => c.spillEvents, 'counter'),
    perContainer('emuv_container_refused_allocations_total', 'Allocations refused with out-of-memory', (c) => c.oomEvents, 'counter'),
    perContainer(
      'emuv_container_deny_once_retries_total',
      'Allocations denied once so the framework frees its cache',
      (c) => c.deniedRetries,
      'counter',
    ),
    perContainer(
      'emuv_container_processes',
      'CUDA processes of the container not known to have exited (docs/agent.md, Live processes)',
      (c) => c.processes,
      'gauge',
    ),
    perContainer(
      'emuv_container_exited_processes',
      'Processes of the container that exited without releasing their stats slot (killed); what they held stays counted until the next CUDA process of the container reaps it',
      (c) => c.exitedProcesses,
      'gauge',
    ),
    perGpu('emuv_gpu_virtual_committed_bytes', 'Sum of the limits of the containers on this GPU', (g) => g.committedBytes),
    perGpu('emuv_gpu_vram_used_bytes', 'VRAM used by emuv containers on this GPU', (g) => g.vramUsedBytes),
    new Gauge({
      name: 'emuv_node_host_spill_used_bytes',
      help: 'Host RAM spilled to by all emuv containers of the node',
      registers: [registry],
      collect() {
        this.set(latest()?.capacity.hostUsedBytes ?? 0);
      },
    }),
  ];
}

export function createAgentMetrics(registry: Registry, latest: () => StatusDocument | null = () => null) {
  usageMetrics(registry, latest);
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
    statsErrors: new Counter({ name: 'emuv_stats_read_errors_total', help: 'Stats files that could not be read', registers: [registry] }),
    staleStatsRemoved: new Counter({
      name: 'emuv_stats_dirs_removed_total',
      help: 'Stats directories removed because their pod is gone',
      registers: [registry],
    }),
  };
}

export type AgentMetrics = ReturnType<typeof createAgentMetrics>;
export { Registry };

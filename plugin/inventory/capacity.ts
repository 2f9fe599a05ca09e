/**
 * Capacity arithmetic (pure). From discovered GPUs, host memory and the node's configuration:
 *   usable VRAM per GPU       = VRAM - reserve                       (reserve: contexts, driver)
 *   host spill budget         = min(50 % of MemTotal, MemTotal - 8 GiB), floored at 0, unless overridden
 *   emuv.io/vram-virtual      = sum of usable VRAM + host spill budget  (0 without an offered GPU)
 *   emuv.io/vgpu              = slots per GPU x offered GPUs
 * All sizes are bytes as JS numbers (exact up to 8 PiB).
 */
import { MAX_SLOTS_PER_GPU } from '../../common/contracts/emuv-node.ts';
import { MAX_SPILL_PERCENT, type HostSpill } from '../../common/contracts/host-spill.ts';
import { SPILL_BACKENDS, type SpillBackendMode, type VramMode } from '../../common/contracts/interposer.ts';

export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;

/** The host spill budget as parsed by its one grammar (common/contracts/host-spill.ts). */
export type HostBudget = HostSpill;

/** The node's configuration: flags today, EmuvNode.spec later. */
export interface CapacityConfig {
  /** VRAM kept back per GPU for CUDA contexts and the driver. When unspecified, 512 MiB. */
  reserveBytes: number;
  /** Host RAM offered for spill. When unspecified, auto: min(50 % of MemTotal, MemTotal - 8 GiB). */
  hostBudget: HostBudget;
  /** Slots (emuv.io/vgpu devices) per GPU. When unspecified, 16. */
  slotsPerGpu: number;
  /** fill: a container may fill the card; fixed: each slot gets usable VRAM / slots. When unspecified, fill. */
  vramMode: VramMode;
  /**
   * Where the interposer puts spilled memory (EMUV_SPILL_BACKEND of every container). When unspecified,
   * DEFAULT_CAPACITY_CONFIG's (auto): optional so that a configuration built before the field existed
   * still means what it meant.
   */
  spillBackend?: SpillBackendMode;
}

export const DEFAULT_CAPACITY_CONFIG: CapacityConfig = {
  reserveBytes: 512 * MiB,
  hostBudget: { kind: 'auto' },
  slotsPerGpu: 16,
  vramMode: 'fill',
  spillBackend: 'auto',
};

/** The spill backend a configuration asks for, its default filled in. */
export function spillBackendOf(cfg: Pick<CapacityConfig, 'spillBackend'>): SpillBackendMode {
  return cfg.spillBackend ?? DEFAULT_CAPACITY_CONFIG.spillBackend!;
}

/** Host RAM the auto budget always leaves to the OS, the kubelet and ordinary pods. */
export const AUTO_HOST_KEEP_BYTES = 8 * GiB;
/** VMM mapping granularity: fixed-mode shares are rounded down to it. */
export const VRAM_GRANULARITY_BYTES = 2 * MiB;
export { MAX_SLOTS_PER_GPU };

export function usableVram(vramBytes: number, reserveBytes: number): number {
  return Math.max(0, vramBytes - reserveBytes);
}

export function hostBudgetBytes(memTotalBytes: number | null, budget: HostBudget): number {
  if (memTotalBytes === null || memTotalBytes <= 0) return 0;
  switch (budget.kind) {
    case 'auto':
      return Math.max(0, Math.min(Math.floor(memTotalBytes / 2), memTotalBytes - AUTO_HOST_KEEP_BYTES));
    case 'percent':
      return Math.floor((memTotalBytes * budget.percent) / 100);
    case 'bytes':
      // Never promise more spill than the node has RAM.
      return Math.min(budget.bytes, memTotalBytes);
  }
}

/** VRAM a slot's container may place before it spills. */
export function slotVramShare(usableBytes: number, cfg: Pick<CapacityConfig, 'slotsPerGpu' | 'vramMode'>): number {
  if (cfg.vramMode === 'fill') return usableBytes;
  const per = Math.floor(usableBytes / cfg.slotsPerGpu);
  return per - (per % VRAM_GRANULARITY_BYTES);
}

/** Checks a configuration; returns the problems (empty when valid). */
export function validateCapacityConfig(cfg: CapacityConfig): string[] {
  const errors: string[] = [];
  if (!Number.isSafeInteger(cfg.reserveBytes) || cfg.reserveBytes < 0) errors.push('VRAM reserve must be a non-negative byte count');
  if (!Number.isInteger(cfg.slotsPerGpu) || cfg.slotsPerGpu < 1 || cfg.slotsPerGpu > MAX_SLOTS_PER_GPU)
    errors.push(`slots per GPU must be an integer from 1 to ${MAX_SLOTS_PER_GPU}`);
  if (cfg.hostBudget.kind === 'percent' && !(cfg.hostBudget.percent >= 0 && cfg.hostBudget.percent <= MAX_SPILL_PERCENT))
    errors.push(`host spill budget percent must be from 0 to ${MAX_SPILL_PERCENT}`);
  if (cfg.hostBudget.kind === 'bytes' && (!Number.isSafeInteger(cfg.hostBudget.bytes) || cfg.hostBudget.bytes < 0))
    errors.push('host spill budget must be a non-negative byte count');
  if (cfg.vramMode !== 'fill' && cfg.vramMode !== 'fixed') errors.push('VRAM mode must be fill or fixed');
  if (cfg.spillBackend !== undefined && !(SPILL_BACKENDS as readonly string[]).includes(cfg.spillBackend))
    errors.push(`spill backend must be ${SPILL_BACKENDS.join(', ')}`);
  return errors;
}

/**
 * The inventory: what this node offers, computed purely from discovery and configuration. Every
 * consumer (device plugin, node status, `emuv discover`, metrics) reads the same object, so the
 * numbers they publish cannot disagree.
 */
import type { SpillBackendMode, VramMode } from '../../common/contracts/interposer.ts';
import type { DiscoveredGpu, NodeDiscovery } from '../discovery/types.ts';
import { hostBudgetBytes, slotVramShare, spillBackendOf, usableVram, type CapacityConfig } from './capacity.ts';

export interface Slot {
  /** Device ID given to the kubelet: names its GPU, [a-z0-9-], at most 63 characters. */
  id: string;
  gpuAddress: string;
  index: number;
}

export interface OfferedGpu {
  address: string;
  uuid: string | null;
  name: string | null;
  minor: number | null;
  numaNode: number;
  vramBytes: number;
  usableVramBytes: number;
  /** EMUV_VRAM_SHARE for a container on one slot of this GPU. */
  slotVramShareBytes: number;
  vramMode: VramMode;
  /** EMUV_SPILL_BACKEND for a container on this GPU. */
  spillBackend: SpillBackendMode;
  slots: Slot[];
}

export interface Inventory {
  gpus: OfferedGpu[];
  hostMemoryBytes: number | null;
  hostBudgetBytes: number;
  usableVramBytes: number;
  /** emuv.io/vram-virtual. */
  vramVirtualBytes: number;
  /** emuv.io/vgpu. */
  vgpuCount: number;
  vramMode: VramMode;
}

/** gpu-0000-01-00-0-s03: stable across restarts, unique per node, valid as a file name. */
export function slotId(gpuAddress: string, index: number): string {
  return `gpu-${gpuAddress.replace(/[:.]/g, '-')}-s${String(index).padStart(2, '0')}`;
}

function offer(gpu: DiscoveredGpu, cfg: CapacityConfig): OfferedGpu | null {
  if (!gpu.offered || gpu.vramBytes === null) return null;
  const usable = usableVram(gpu.vramBytes, cfg.reserveBytes);
  if (usable === 0) return null;
  return {
    address: gpu.pci.address,
    uuid: gpu.uuid,
    name: gpu.name,
    minor: gpu.minor,
    numaNode: gpu.pci.numaNode,
    vramBytes: gpu.vramBytes,
    usableVramBytes: usable,
    slotVramShareBytes: slotVramShare(usable, cfg),
    vramMode: cfg.vramMode,
    spillBackend: spillBackendOf(cfg),
    slots: Array.from({ length: cfg.slotsPerGpu }, (_, i) => ({ id: slotId(gpu.pci.address, i), gpuAddress: gpu.pci.address, index: i })),
  };
}

export function buildInventory(node: NodeDiscovery, cfg: CapacityConfig): Inventory {
  const gpus = node.gpus.map((g) => offer(g, cfg)).filter((g): g is OfferedGpu => g !== null);
  const usable = gpus.reduce((sum, g) => sum + g.usableVramBytes, 0);
  // Spill without a GPU to spill from would be capacity no pod can use.
  const host = gpus.length > 0 ? hostBudgetBytes(node.hostMemoryBytes, cfg.hostBudget) : 0;
  return {
    gpus,
    hostMemoryBytes: node.hostMemoryBytes,
    hostBudgetBytes: host,
    usableVramBytes: usable,
    vramVirtualBytes: usable + host,
    vgpuCount: gpus.reduce((n, g) => n + g.slots.length, 0),
    vramMode: cfg.vramMode,
  };
}

/** Why a discovered GPU is absent from the inventory (for `emuv discover` and logs). */
export function notOfferedReason(gpu: DiscoveredGpu, cfg: CapacityConfig): string | null {
  if (!gpu.offered) return gpu.reason;
  if (gpu.vramBytes !== null && usableVram(gpu.vramBytes, cfg.reserveBytes) === 0)
    return `VRAM (${gibText(gpu.vramBytes)}) is not larger than the VRAM reserve (${gibText(cfg.reserveBytes)}): nothing is left to offer`;
  return null;
}

/** Bytes as GiB for a message, exact where it matters: "8 GiB", "7.5 GiB", "512 MiB". */
function gibText(bytes: number): string {
  if (bytes < 1024 ** 3) return `${+(bytes / 1024 ** 2).toFixed(2)} MiB`;
  return `${+(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/**
 * `emuv discover` output: text like `nvidia-smi -L` plus the capacity the agent would publish, or
 * the versioned JSON document (schema: docs/discover-json.md; apiVersion bumps on incompatible change).
 */
import type { CapacityConfig } from '../inventory/capacity.ts';
import type { Inventory } from '../inventory/inventory.ts';
import { notOfferedReason } from '../inventory/inventory.ts';
import type { NodeDiscovery } from './types.ts';

export const DISCOVER_API_VERSION = 'emuv.io/discover/v1';

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function discoverDocument(node: NodeDiscovery, inv: Inventory, cfg: CapacityConfig) {
  const offered = new Map(inv.gpus.map((g) => [g.address, g]));
  return {
    apiVersion: DISCOVER_API_VERSION,
    nvml: node.nvml,
    hostMemoryBytes: node.hostMemoryBytes,
    gpus: node.gpus.map((g, index) => {
      const o = offered.get(g.pci.address);
      return {
        index,
        pciAddress: g.pci.address,
        name: g.name,
        uuid: g.uuid,
        minor: g.minor,
        vendorId: g.pci.vendorId,
        deviceId: g.pci.deviceId,
        subsystemVendorId: g.pci.subsystemVendorId,
        subsystemDeviceId: g.pci.subsystemDeviceId,
        classCode: g.pci.classCode,
        numaNode: g.pci.numaNode,
        driver: g.pci.driver,
        pcie: g.pci.link,
        vramBytes: g.vramBytes,
        vramSource: g.vramSource,
        offered: o !== undefined,
        reason: o ? null : notOfferedReason(g, cfg),
        usableVramBytes: o?.usableVramBytes ?? null,
        slots: o?.slots.map((s) => s.id) ?? [],
      };
    }),
    capacity: {
      'emuv.io/vram-virtual': inv.vramVirtualBytes,
      'emuv.io/vgpu': inv.vgpuCount,
      usableVramBytes: inv.usableVramBytes,
      hostSpillBudgetBytes: inv.hostBudgetBytes,
      vramReserveBytes: cfg.reserveBytes,
      slotsPerGpu: cfg.slotsPerGpu,
      vramMode: cfg.vramMode,
    },
    problems: node.problems,
  };
}

export function formatDiscoverText(node: NodeDiscovery, inv: Inventory, cfg: CapacityConfig): string {
  const doc = discoverDocument(node, inv, cfg);
  const lines: string[] = [];
  if (doc.gpus.length === 0) lines.push('No NVIDIA GPU found.');
  for (const g of doc.gpus) {
    const id = g.uuid ? ` (UUID: ${g.uuid})` : '';
    const link =
      g.pcie.gtPerSec !== null && g.pcie.width !== null
        ? `PCIe ${g.pcie.gtPerSec} GT/s x${g.pcie.width} = ${((g.pcie.bandwidthBytesPerSec ?? 0) / 1e9).toFixed(1)} GB/s spill`
        : 'PCIe link unknown';
    const vram = g.vramBytes !== null ? `${formatBytes(g.vramBytes)} VRAM (${g.vramSource})` : 'VRAM unknown';
    lines.push(`GPU ${g.index}: ${g.name ?? 'NVIDIA GPU'}${id}`);
    lines.push(`  ${g.pciAddress}  NUMA ${g.numaNode}  driver ${g.driver ?? 'none'}  ${link}  ${vram}`);
    lines.push(
      g.offered ? `  offered: ${formatBytes(g.usableVramBytes ?? 0)} usable, ${g.slots.length} slots` : `  not offered: ${g.reason}`,
    );
  }
  const host = node.hostMemoryBytes !== null ? formatBytes(node.hostMemoryBytes) : 'unknown';
  lines.push(`Host memory: ${host}; spill budget ${formatBytes(inv.hostBudgetBytes)}`);
  lines.push(
    `Capacity: emuv.io/vram-virtual ${inv.vramVirtualBytes} (${formatBytes(inv.vramVirtualBytes)}), emuv.io/vgpu ${inv.vgpuCount}`,
  );
  if (!node.nvml) lines.push('NVML: not loaded (using /proc and --gpu-memory)');
  for (const p of node.problems) lines.push(`warning: ${p.subject}: ${p.message}`);
  return `${lines.join('\n')}\n`;
}

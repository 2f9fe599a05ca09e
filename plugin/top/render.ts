/**
 * `emuv top` rendering (pure): a status document in, screen lines out. Per GPU, bars for physical
 * VRAM used by emuv containers, and for the node, virtual capacity committed and host spill against
 * its budget; below, one row per container, sorted.
 */
import type { ContainerUsage } from '../usage/collector.ts';
import type { StatusDocument } from '../usage/status.ts';

export const SORT_KEYS = ['spill', 'vram', 'limit', 'name', 'events'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export function formatGiB(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)}G`;
}

export function bar(value: number, max: number, width: number): string {
  const frac = max > 0 ? Math.min(1, Math.max(0, value / max)) : 0;
  const full = Math.round(frac * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

function name(c: ContainerUsage): string {
  return c.owner ? `${c.owner.namespace}/${c.owner.pod}/${c.owner.container}` : `(${c.allocId})`;
}

export function sortContainers(cs: readonly ContainerUsage[], key: SortKey): ContainerUsage[] {
  const by: Record<SortKey, (a: ContainerUsage, b: ContainerUsage) => number> = {
    spill: (a, b) => b.hostUsedBytes - a.hostUsedBytes,
    vram: (a, b) => b.vramUsedBytes - a.vramUsedBytes,
    limit: (a, b) => b.limitBytes - a.limitBytes,
    events: (a, b) => b.spillEvents - a.spillEvents,
    name: () => 0,
  };
  // Unreadable stats have no numbers to sort by: they go last.
  return [...cs].sort((a, b) => Number(a.error !== null) - Number(b.error !== null) || by[key](a, b) || name(a).localeCompare(name(b)));
}

const pad = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}~` : s.padEnd(n));
const lpad = (s: string, n: number) => s.padStart(n);

export function renderTop(doc: StatusDocument, opts: { width?: number; sort?: SortKey; source?: string } = {}): string[] {
  const width = Math.max(80, opts.width ?? 100);
  const barWidth = Math.max(10, width - 50);
  const sort = opts.sort ?? 'spill';
  const lines: string[] = [];
  lines.push(`emuv top - node ${doc.node ?? '(unknown)'} - ${doc.time}${opts.source ? ` - ${opts.source}` : ''} - sort: ${sort}`);
  for (const g of doc.gpus) {
    lines.push(`GPU ${g.address} ${g.name ?? 'NVIDIA GPU'} ${g.healthy ? 'healthy' : `UNHEALTHY (${g.reason})`}`);
    lines.push(
      `  VRAM       ${bar(g.vramUsedBytes, g.usableVramBytes, barWidth)} ${formatGiB(g.vramUsedBytes)} / ${formatGiB(g.usableVramBytes)}`,
    );
    lines.push(`  spill      ${bar(g.hostUsedBytes, doc.capacity.hostBudgetBytes, barWidth)} ${formatGiB(g.hostUsedBytes)} in host RAM`);
  }
  const cap = doc.capacity;
  lines.push(`node       virtual ${formatGiB(cap.vramVirtualBytes)}, committed ${formatGiB(cap.committedBytes)}, ${cap.vgpu} slots`);
  lines.push(
    `  committed  ${bar(cap.committedBytes, cap.vramVirtualBytes, barWidth)} ${formatGiB(cap.committedBytes)} / ${formatGiB(cap.vramVirtualBytes)}`,
  );
  lines.push(
    `  host spill ${bar(cap.hostUsedBytes, cap.hostBudgetBytes, barWidth)} ${formatGiB(cap.hostUsedBytes)} / ${formatGiB(cap.hostBudgetBytes)}`,
  );
  lines.push('');
  const nameWidth = Math.max(20, width - 62);
  lines.push(
    `${pad('NAMESPACE/POD/CONTAINER', nameWidth)} ${lpad('LIMIT', 7)} ${lpad('VRAM', 7)} ${lpad('SPILL', 7)} ${lpad('PEAK-V', 7)} ${lpad('PEAK-S', 7)} ${lpad('SPILLS', 7)} ${lpad('OOM', 5)} ${lpad('PROC', 5)}`,
  );
  const cs = sortContainers(doc.containers, sort);
  if (cs.length === 0) lines.push('(no emuv container has started a CUDA process on this node)');
  for (const c of cs) {
    if (c.error) {
      lines.push(`${pad(name(c), nameWidth)} stats unreadable: ${c.error}`);
      continue;
    }
    lines.push(
      `${pad(name(c), nameWidth)} ${lpad(formatGiB(c.limitBytes), 7)} ${lpad(formatGiB(c.vramUsedBytes), 7)} ${lpad(formatGiB(c.hostUsedBytes), 7)} ${lpad(formatGiB(c.vramPeakBytes), 7)} ${lpad(formatGiB(c.hostPeakBytes), 7)} ${lpad(String(c.spillEvents), 7)} ${lpad(String(c.oomEvents), 5)} ${lpad(String(c.processes), 5)}`,
    );
    // An agent older than these fields sends none: nothing to say then.
    if ((c.exitedProcesses ?? 0) > 0)
      lines.push(
        `  ${c.exitedProcesses} exited process${c.exitedProcesses === 1 ? '' : 'es'} still counted (${formatGiB(c.exitedHeldBytes ?? 0)}) until the container's next CUDA process releases ${c.exitedProcesses === 1 ? 'it' : 'them'}`,
      );
  }
  return lines.map((l) => (l.length > width ? l.slice(0, width) : l));
}

/**
 * Per-container usage: every allocation directory under the state directory holds the stats file
 * its container's processes write; the collector reads each one (seqlock-consistent copy), names
 * its owner through PodResources, and cleans up directories whose pod is gone. A broken stats file
 * is reported for that container alone.
 */
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CONTAINER_PATHS } from '../../common/contracts/interposer.ts';
import { StatsEmptyError, type StatsSnapshot } from '../stats/stats-reader.ts';
import type { Liveness, ProcessLiveness } from './liveness.ts';
import type { ContainerRef } from './owners.ts';

export interface ContainerUsage {
  allocId: string;
  owner: ContainerRef | null;
  gpu: string | null;
  limitBytes: number;
  vramShareBytes: number;
  vramUsedBytes: number;
  hostUsedBytes: number;
  vramPeakBytes: number;
  hostPeakBytes: number;
  spillEvents: number;
  oomEvents: number;
  deniedRetries: number;
  /** CUDA processes not known to have exited: the live ones and those whose liveness cannot be told (below). */
  processes: number;
  /** Of `processes`, those whose liveness could not be told (see usage/liveness.ts); 0 when all were checked. */
  processesUnverified: number;
  /**
   * Processes that exited without releasing their slot (killed): the interposer counts what they held in
   * the container's totals until the container's next CUDA process reaps the slot.
   */
  exitedProcesses: number;
  /** VRAM + host spill the exited processes still hold in the container's totals. */
  exitedHeldBytes: number;
  /** Why the stats could not be read; null when they were. */
  error: string | null;
}

/** Name of the stats file inside an allocation directory. */
export const STATS_FILE_NAME = CONTAINER_PATHS.statsFile.slice(CONTAINER_PATHS.statsDir.length + 1);

/**
 * One container's usage from its stats snapshot. `liveness` has one verdict per process slot (in order);
 * without it every LIVE slot counts as a running process, unverified.
 */
export function usageFromSnapshot(
  allocId: string,
  owner: ContainerRef | null,
  s: StatsSnapshot,
  liveness: readonly Liveness[] = s.processes.map(() => 'unknown'),
): ContainerUsage {
  const sum = (f: (d: StatsSnapshot['devices'][number]) => bigint) => Number(s.devices.reduce((a, d) => a + f(d), 0n));
  const exited = s.processes.filter((_, i) => liveness[i] === 'gone');
  // What a reaper will give back: the held counters where the writer keeps them (minor 1), else the slot's bytes.
  const held = exited.reduce((a, p) => a + (p.held ? p.held.total : p.devices.reduce((b, d) => b + d.vram + d.host, 0n)), 0n);
  return {
    allocId,
    owner,
    gpu: s.gpu || null,
    limitBytes: Number(s.devices[0]?.config.limitBytes ?? 0n),
    vramShareBytes: Number(s.devices[0]?.config.vramShare ?? 0n),
    vramUsedBytes: sum((d) => d.totals.vramUsed),
    hostUsedBytes: sum((d) => d.totals.hostUsed),
    vramPeakBytes: sum((d) => d.totals.vramPeak),
    hostPeakBytes: sum((d) => d.totals.hostPeak),
    spillEvents: sum((d) => d.totals.spillEvents),
    oomEvents: sum((d) => d.totals.oomEvents),
    deniedRetries: sum((d) => d.totals.deniedRetries),
    processes: s.processes.length - exited.length,
    processesUnverified: liveness.filter((l) => l === 'unknown').length,
    exitedProcesses: exited.length,
    exitedHeldBytes: Number(held),
    error: null,
  };
}

export interface CollectOptions {
  stateDir: string;
  /** Owners by allocation ID, or null when PodResources could not be asked (then nothing is cleaned). */
  owners: ReadonlyMap<string, ContainerRef> | null;
  read: (path: string) => StatsSnapshot;
  /** Tells exited processes from running ones; without it every LIVE slot counts as running, unverified. */
  liveness?: ProcessLiveness;
  /** Directories without an owner older than this are removed. When unspecified, 10 minutes. */
  staleAfterMs?: number;
  now?: number;
}

export function collectUsage(o: CollectOptions): { containers: ContainerUsage[]; removed: string[] } {
  let entries: string[];
  try {
    entries = readdirSync(o.stateDir).sort();
  } catch {
    return { containers: [], removed: [] };
  }
  const containers: ContainerUsage[] = [];
  const removed: string[] = [];
  const now = o.now ?? Date.now();
  for (const allocId of entries) {
    const dir = join(o.stateDir, allocId);
    let mtimeMs: number;
    try {
      // lstat: only real directories, never a link to somewhere else.
      const st = lstatSync(dir);
      if (!st.isDirectory()) continue;
      mtimeMs = st.mtimeMs;
    } catch {
      continue;
    }
    const owner = o.owners?.get(allocId) ?? null;
    if (o.owners && !owner && now - mtimeMs > (o.staleAfterMs ?? 600_000)) {
      rmSync(dir, { recursive: true, force: true });
      removed.push(allocId);
      continue;
    }
    const file = join(dir, STATS_FILE_NAME);
    try {
      const snapshot = o.read(file);
      containers.push(usageFromSnapshot(allocId, owner, snapshot, o.liveness?.check(snapshot.processes)));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Allocated, and no CUDA process has started yet: no file (older agents), or the empty one Allocate makes.
      if (code === 'ENOENT' || err instanceof StatsEmptyError) continue;
      containers.push({ ...emptyUsage(allocId, owner), error: (err as Error).message });
    }
  }
  return { containers, removed };
}

function emptyUsage(allocId: string, owner: ContainerRef | null): ContainerUsage {
  return {
    allocId,
    owner,
    gpu: null,
    limitBytes: 0,
    vramShareBytes: 0,
    vramUsedBytes: 0,
    hostUsedBytes: 0,
    vramPeakBytes: 0,
    hostPeakBytes: 0,
    spillEvents: 0,
    oomEvents: 0,
    deniedRetries: 0,
    processes: 0,
    processesUnverified: 0,
    exitedProcesses: 0,
    exitedHeldBytes: 0,
    error: null,
  };
}

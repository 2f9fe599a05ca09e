/**
 * Per-container usage: every allocation directory under the state directory holds the stats file
 * its container's processes write; the collector reads each one (seqlock-consistent copy), names
 * its owner through PodResources, and cleans up directories whose pod is gone. A broken stats file
 * is reported for that container alone.
 */
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CONTAINER_PATHS } from '../../common/contracts/interposer.ts';
import type { StatsSnapshot } from '../stats/stats-reader.ts';
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
  processes: number;
  /** Why the stats could not be read; null when they were. */
  error: string | null;
}

/** Name of the stats file inside an allocation directory. */
export const STATS_FILE_NAME = CONTAINER_PATHS.statsFile.slice(CONTAINER_PATHS.statsDir.length + 1);

export function usageFromSnapshot(allocId: string, owner: ContainerRef | null, s: StatsSnapshot): ContainerUsage {
  const sum = (f: (d: StatsSnapshot['devices'][number]) => bigint) => Number(s.devices.reduce((a, d) => a + f(d), 0n));
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
    processes: s.processes.length,
    error: null,
  };
}

export interface CollectOptions {
  stateDir: string;
  /** Owners by allocation ID, or null when PodResources could not be asked (then nothing is cleaned). */
  owners: ReadonlyMap<string, ContainerRef> | null;
  read: (path: string) => StatsSnapshot;
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
      const st = statSync(dir);
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
      containers.push(usageFromSnapshot(allocId, owner, o.read(file)));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue; // allocated, no CUDA process has started yet
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
    error: null,
  };
}

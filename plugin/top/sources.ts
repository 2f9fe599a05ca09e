/**
 * Where `emuv top` and `emuv status` get a status document: the agent's /status (directly or through
 * `kubectl port-forward`), or the node's stats files read in place (on the node itself, no agent).
 */
import { statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { ConfigError } from '../../common/errors.ts';
import { STATS_FILE_NAME, collectUsage } from '../usage/collector.ts';
import { readStatsFile, type StatsSnapshot } from '../stats/stats-reader.ts';
import { procLiveness, type Liveness, type ProcessLiveness } from '../usage/liveness.ts';
import { ownersByAllocId } from '../usage/owners.ts';
import { podResourcesClient } from '../usage/pod-resources.ts';
import { buildStatus, STATUS_API_VERSION, type StatusDocument } from '../usage/status.ts';

import type { ProcessRow, ProcessTable } from './state.ts';

export type StatusSource = {
  /** Where the documents come from, as the title shows it (may change after `pick`). */
  readonly describe: string;
  fetch(): Promise<StatusDocument>;
  close(): void;
  /**
   * The process slots behind the last fetch, by allocation ID; absent when the source cannot see them
   * (an agent's /status carries per container counts only).
   */
  processes?(): ProcessTable;
  /** Sources of several nodes: show the node `step` places after the current one (wrapping; `[`/`]` in top). */
  pick?(step: number): void;
};

/** A status document from its JSON text, or an error that says where it came from and what was wrong. */
export function parseStatusDocument(text: string, where: string): StatusDocument {
  let doc: StatusDocument | null;
  try {
    doc = JSON.parse(text) as StatusDocument | null;
  } catch {
    throw new Error(`${where} did not answer JSON (starts ${JSON.stringify(text.slice(0, 40))})`);
  }
  if (!doc || typeof doc !== 'object' || doc.apiVersion !== STATUS_API_VERSION)
    throw new Error(
      `${where} is not an ${STATUS_API_VERSION} document (got ${JSON.stringify((doc as { apiVersion?: unknown } | null)?.apiVersion)})`,
    );
  return doc;
}

/** One container's process rows from its stats snapshot and the liveness verdict of each slot. */
export function processRows(s: StatsSnapshot, verdicts: readonly Liveness[] | null): ProcessRow[] {
  return s.processes.map((p, i) => ({
    pid: p.pid,
    hostPid: p.hostPid,
    state: verdicts?.[i] ?? 'unknown',
    vramBytes: Number(p.devices.reduce((a, d) => a + d.vram, 0n)),
    hostBytes: Number(p.devices.reduce((a, d) => a + d.host, 0n)),
  }));
}

export function agentSource(url: string, timeoutMs = 3000): StatusSource {
  const endpoint = `${url.replace(/\/+$/, '')}/status`;
  return {
    describe: endpoint,
    fetch: async () => {
      const res = await fetch(endpoint, { signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) throw new Error(`${endpoint} answered ${res.status}`);
      return parseStatusDocument(await res.text(), endpoint);
    },
    close: () => {},
  };
}

/**
 * Reads <stateDir>/*\/stats.bin directly. GPUs and capacity are the agent's to know, so they stay empty.
 * Throws a ConfigError when stateDir is not a directory: an empty view of a mistyped path would read as
 * "no container uses a GPU".
 */
export function statsDirSource(stateDir: string, podResourcesSocket: string | null, procRoot = '/proc'): StatusSource {
  const st = statSync(stateDir, { throwIfNoEntry: false });
  if (!st?.isDirectory())
    throw new ConfigError(
      `--state-dir ${stateDir}: ${st ? 'not a directory' : 'no such directory'}; expected the agent's state directory (default /run/emuv on the node)`,
    );
  const pr = podResourcesSocket ? podResourcesClient(podResourcesSocket) : null;
  const inner = procLiveness(procRoot);
  // collectUsage reads a container's stats file, then asks for the liveness of its slots: both are
  // watched here to keep the slots (pid, bytes) that the status document sums away.
  let table = new Map<string, ProcessRow[]>();
  let lastRead: { allocId: string; snapshot: StatsSnapshot } | null = null;
  const liveness: ProcessLiveness = {
    check: (slots) => {
      const verdicts = inner.check(slots);
      if (lastRead && lastRead.snapshot.processes === slots) table.set(lastRead.allocId, processRows(lastRead.snapshot, verdicts));
      return verdicts;
    },
  };
  const read = (p: string): StatsSnapshot => {
    const snapshot = readStatsFile(p);
    lastRead = { allocId: basename(dirname(p)), snapshot };
    table.set(lastRead.allocId, processRows(snapshot, null));
    return snapshot;
  };
  return {
    describe: `${stateDir}/*/${STATS_FILE_NAME}`,
    fetch: async () => {
      const owners = pr ? ownersByAllocId(await pr.list()) : null;
      table = new Map();
      lastRead = null;
      // Never clean up from here: that is the agent's job (staleAfterMs: Infinity).
      const { containers } = collectUsage({
        stateDir,
        owners,
        read,
        liveness,
        staleAfterMs: Number.POSITIVE_INFINITY,
      });
      const empty = {
        gpus: [],
        hostMemoryBytes: null,
        hostBudgetBytes: 0,
        usableVramBytes: 0,
        vramVirtualBytes: 0,
        vgpuCount: 0,
        vramMode: 'fill' as const,
      };
      return buildStatus({ node: null, now: new Date(), inventory: empty, health: () => ({ healthy: true, reason: null }), containers });
    },
    close: () => pr?.close(),
    processes: () => table,
  };
}

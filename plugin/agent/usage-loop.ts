/**
 * Usage, every 2 s: stats files -> owners (PodResources) -> the status document behind /status and the
 * per-container metrics. On the shared periodic loop (common/periodic.ts): a pass waits for the one in
 * flight, so a PodResources call that stalls (its deadline is 2 s, the interval too) delays the next pass
 * instead of piling passes up, and a refresh asked for meanwhile (GET /status through refresh()) joins it.
 */
import type { Logger } from '../../common/log.ts';
import { errFields } from '../../common/log.ts';
import { Periodic } from '../../common/periodic.ts';
import type { DeviceState } from '../deviceplugin/device-state.ts';
import type { AgentMetrics } from '../metrics/definitions.ts';
import { readStatsFile } from '../stats/stats-reader.ts';
import { collectUsage } from '../usage/collector.ts';
import { procLiveness } from '../usage/liveness.ts';
import { ownersByAllocId } from '../usage/owners.ts';
import type { PodResourcesSource } from '../usage/pod-resources.ts';
import { buildStatus, type StatusDocument } from '../usage/status.ts';

export interface UsageLoop {
  /** The document of the last pass that succeeded; null before the first. */
  latest(): StatusDocument | null;
  /** Reads the stats files now (or joins the pass in flight) and returns the fresh document. */
  refresh(): Promise<StatusDocument>;
  /** No pass starts any more, the pass in flight has finished, and the PodResources client is closed. */
  stop(): Promise<void>;
  /** Stops the timer and waits for a pass in flight; nothing is published after it. */
  halt(): Promise<void>;
}

/** Runs the first pass, then starts the loop. */
export async function startUsageLoop(o: {
  stateDir: string;
  procRoot: string;
  nodeName: string | null;
  /** Names the pod and container of each allocation; null: containers are shown unnamed. Closed by stop(). */
  podResources: PodResourcesSource | null;
  /** Where the inventory and GPU health come from (the device plugin's state). */
  state: Pick<DeviceState, 'inventory' | 'health'>;
  metrics: Pick<AgentMetrics, 'statsErrors' | 'staleStatsRemoved'>;
  log: Logger;
  intervalMs: number;
}): Promise<UsageLoop> {
  const { log, metrics, podResources } = o;
  const liveness = procLiveness(o.procRoot);
  let latest: StatusDocument | null = null;
  let lastError: unknown = null;
  let podResourcesWarned = false;

  const pass = async (): Promise<void> => {
    try {
      let owners = null;
      if (podResources) {
        try {
          owners = ownersByAllocId(await podResources.list());
          podResourcesWarned = false;
        } catch (err) {
          // Said once per outage: every 2 s would drown the log.
          if (!podResourcesWarned) log.warn('pod resources unavailable; containers are shown without names', errFields(err));
          podResourcesWarned = true;
        }
      }
      const { containers, removed } = collectUsage({ stateDir: o.stateDir, owners, read: (p) => readStatsFile(p), liveness });
      for (const c of containers) if (c.error) metrics.statsErrors.inc();
      for (const allocId of removed) {
        metrics.staleStatsRemoved.inc();
        log.info('stats directory removed: its pod is gone', { allocId });
      }
      latest = buildStatus({
        node: o.nodeName,
        now: new Date(),
        inventory: o.state.inventory,
        health: (a) => o.state.health(a),
        containers,
      });
      lastError = null;
    } catch (err) {
      lastError = err;
      log.error('usage collection failed', errFields(err));
    }
  };
  const loop = new Periodic(pass, o.intervalMs);
  await loop.run();
  loop.start();
  return {
    latest: () => latest,
    refresh: async () => {
      await loop.run();
      if (lastError !== null || latest === null) throw lastError ?? new Error('no usage collected yet');
      return latest;
    },
    halt: () => loop.halt(),
    stop: async () => {
      await loop.halt();
      podResources?.close();
    },
  };
}

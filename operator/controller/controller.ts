/**
 * The controller loop: informers -> handlers (enqueue keys) -> work queue -> workers -> Reconciler.
 * A periodic resync enqueues every key, so a missed event or a failed write is repaired within
 * `resyncMs` even with no further change (level-triggered).
 */
import type { Logger } from '../../common/log.ts';
import type { Clock } from '../clock.ts';
import type { OperatorMetrics } from '../metrics.ts';
import { wireHandlers } from './informers.ts';
import type { InformerLike, Named } from './informers.ts';
import { runWorkers } from './queue.ts';
import type { WorkQueue } from './queue.ts';
import type { Reconciler } from './reconcile.ts';

export interface StartableInformer extends InformerLike<Named> {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export class Controller {
  private readonly deps: {
    reconciler: Reconciler;
    queue: WorkQueue;
    informers: { policies: StartableInformer; nodes: StartableInformer; emuvNodes: StartableInformer };
    clock: Clock;
    logger: Logger;
    metrics?: OperatorMetrics;
    workers?: number;
    resyncMs?: number;
    /** Informers already started by someone else (e.g. shared with the webhook). */
    startedInformers?: ReadonlySet<StartableInformer>;
  };
  private resyncTimer: unknown;
  private running: Promise<void> | undefined;

  constructor(deps: Controller['deps']) {
    this.deps = deps;
  }

  async start(): Promise<void> {
    const { informers, queue, reconciler, clock, logger, metrics } = this.deps;
    wireHandlers(informers, queue, reconciler);
    for (const inf of [informers.policies, informers.nodes, informers.emuvNodes]) {
      if (!this.deps.startedInformers?.has(inf)) await inf.start();
    }
    const enqueueAll = () => {
      for (const k of reconciler.keysForAllPolicies()) queue.add(k);
      for (const k of reconciler.keysForAllNodes()) queue.add(k);
      metrics?.queueDepth.set(queue.len());
    };
    enqueueAll();
    const resync = () => {
      enqueueAll();
      this.resyncTimer = clock.setTimeout(resync, this.deps.resyncMs ?? 10 * 60_000);
    };
    this.resyncTimer = clock.setTimeout(resync, this.deps.resyncMs ?? 10 * 60_000);
    const handle = async (key: string) => {
      const kind = key.slice(0, key.indexOf('/'));
      const end = metrics?.reconcileSeconds.startTimer({ kind });
      try {
        await reconciler.reconcile(key);
        metrics?.reconciles.inc({ kind, result: 'success' });
      } catch (err) {
        metrics?.reconciles.inc({ kind, result: 'error' });
        throw err;
      } finally {
        end?.();
        metrics?.queueDepth.set(queue.len());
      }
    };
    logger.info('controller started', { workers: this.deps.workers ?? 2 });
    this.running = runWorkers(queue, handle, {
      workers: this.deps.workers ?? 2,
      logger,
    });
  }

  async stop(): Promise<void> {
    const { informers, queue, clock } = this.deps;
    if (this.resyncTimer !== undefined) clock.clearTimeout(this.resyncTimer);
    queue.shutDown();
    await this.running;
    for (const inf of [informers.policies, informers.nodes, informers.emuvNodes]) {
      if (!this.deps.startedInformers?.has(inf)) await inf.stop();
    }
  }
}

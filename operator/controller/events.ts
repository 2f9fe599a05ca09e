/** Event reasons (constants) and a recorder that writes core/v1 Events, deduplicated over a window. */
import { errFields, type Logger } from '../../common/log.ts';
import type { Clock } from '../clock.ts';
import type { CoreEvent, EmuvApi, ObjectReference } from '../kube/api.ts';

export const EVENT_CONFIGURED = 'Configured';
export const EVENT_CONFIG_UPDATED = 'ConfigUpdated';
export const EVENT_POLICY_CONFLICT = 'PolicyConflict';
export const EVENT_INVALID_POLICY = 'InvalidPolicy';

export const COMPONENT = 'emuv-operator';

export interface EventRecorder {
  /** Queues an Event; resolves at once (the write happens in the background, best effort). */
  record(obj: ObjectReference, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}

/**
 * Writes Events; the same (object, reason, message) is written at most once per `windowMs`, so a
 * level-triggered loop that sees the same conflict on every pass does not flood the namespace. Events are
 * best effort and asynchronous: a failed write is logged and swallowed (it must never fail or delay a
 * reconcile).
 */
export class ApiEventRecorder implements EventRecorder {
  private readonly seen = new Map<string, number>();
  private readonly backlog: CoreEvent[] = [];
  private readonly idle: Array<() => void> = [];
  private inFlight = 0;
  private dropped = 0;
  private readonly maxInFlight: number;
  private readonly maxBacklog: number;
  private readonly api: EmuvApi;
  private readonly clock: Clock;
  private readonly instance: string;
  private readonly windowMs: number;
  private readonly log: Logger;

  constructor(deps: {
    api: EmuvApi;
    clock: Clock;
    instance: string;
    windowMs?: number;
    logger: Logger;
    /** Concurrent event writes; default 2. */
    maxInFlight?: number;
    /** Events waiting to be written before the oldest are dropped; default 1000. */
    maxBacklog?: number;
  }) {
    this.api = deps.api;
    this.maxInFlight = deps.maxInFlight ?? 2;
    this.maxBacklog = deps.maxBacklog ?? 1000;
    this.clock = deps.clock;
    this.instance = deps.instance;
    this.windowMs = deps.windowMs ?? 10 * 60_000;
    this.log = deps.logger;
  }

  async record(obj: ObjectReference, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = this.clock.now();
    const key = `${obj.kind}/${obj.namespace ?? ''}/${obj.name}/${reason}/${message}`;
    const last = this.seen.get(key);
    if (last !== undefined && now - last < this.windowMs) return;
    this.seen.set(key, now);
    if (this.seen.size > 10_000) {
      for (const [k, t] of this.seen) if (now - t >= this.windowMs) this.seen.delete(k);
    }
    const ts = new Date(now).toISOString();
    const ev: CoreEvent = {
      // Cluster-scoped objects get their events in "default", as client-go's recorder does.
      metadata: { generateName: `${obj.name}.`, namespace: obj.namespace ?? 'default' },
      involvedObject: obj,
      reason,
      message,
      type,
      source: { component: COMPONENT },
      reportingComponent: COMPONENT,
      reportingInstance: this.instance,
      action: reason,
      firstTimestamp: ts,
      lastTimestamp: ts,
      count: 1,
    };
    // Not awaited by the reconcile: an event is a side note and must not slow down or fail the real work.
    // A small number of writers drain a bounded backlog; beyond it the oldest events are dropped.
    this.backlog.push(ev);
    if (this.backlog.length > this.maxBacklog) {
      this.backlog.shift();
      this.dropped++;
      if (this.dropped === 1 || this.dropped % 1000 === 0) this.log.warn('event backlog full; dropping events', { dropped: this.dropped });
    }
    this.pump();
  }

  /** Resolves when every event recorded so far has been sent or has failed (for shutdown and tests). */
  async flush(): Promise<void> {
    while (this.backlog.length > 0 || this.inFlight > 0) {
      await new Promise<void>((resolve) => this.idle.push(resolve));
    }
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.backlog.length > 0) {
      const ev = this.backlog.shift()!;
      this.inFlight++;
      this.api
        .createEvent(ev)
        .catch((err: unknown) => {
          this.log.warn('failed to record event', { reason: ev.reason, object: ev.involvedObject.name, ...errFields(err) });
        })
        .finally(() => {
          this.inFlight--;
          this.pump();
          if (this.inFlight === 0 && this.backlog.length === 0) for (const wake of this.idle.splice(0)) wake();
        });
    }
  }
}

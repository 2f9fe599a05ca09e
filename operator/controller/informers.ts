/**
 * Informer event handlers. They only enqueue keys: what to do is decided in reconcile.
 * A policy spec change (new generation), creation or deletion can move any node to another policy and
 * change every policy's counts, so it fans out to all node and policy keys; a Node matters only when it appears, disappears or relabels (its
 * status heartbeats are ignored); an EmuvNode change re-checks its own spec (drift repair).
 *
 * And their resilience: `resilientInformer` restarts an informer after a watch error, and tells whether
 * its cache has been filled (the webhook is ready only then).
 */
import type { Logger } from '../../common/log.ts';

/** The part of a client-node Informer these handlers need. */
export interface InformerLike<T> {
  on(verb: 'add' | 'update' | 'delete', cb: (obj: T) => void): void;
}

export interface Named {
  metadata?: { name?: string; labels?: Record<string, string>; generation?: number };
}

export interface Enqueuer {
  add(key: string): void;
}

export interface KeySource {
  keysForAllNodes(): string[];
  keysForAllPolicies(): string[];
}

const fingerprint = (labels: Record<string, string> | undefined) =>
  JSON.stringify(Object.entries(labels ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)));

export function wireHandlers(
  informers: { policies: InformerLike<Named>; nodes: InformerLike<Named>; emuvNodes: InformerLike<Named> },
  queue: Enqueuer,
  keys: KeySource,
): void {
  const all = () => {
    for (const k of keys.keysForAllPolicies()) queue.add(k);
    for (const k of keys.keysForAllNodes()) queue.add(k);
  };
  // A status write by ourselves bumps resourceVersion but not generation: no fan-out for that, or every
  // policy status update would re-enqueue every node.
  const policyGenerations = new Map<string, number | undefined>();
  const policyChanged = (obj: Named, deleted: boolean) => {
    const name = obj.metadata?.name ?? '';
    const gen = obj.metadata?.generation;
    if (!deleted && policyGenerations.has(name) && policyGenerations.get(name) === gen && gen !== undefined) return;
    if (deleted) policyGenerations.delete(name);
    else policyGenerations.set(name, gen);
    all();
  };
  informers.policies.on('add', (o) => policyChanged(o, false));
  informers.policies.on('update', (o) => policyChanged(o, false));
  informers.policies.on('delete', (o) => policyChanged(o, true));

  const nodeLabels = new Map<string, string>();
  const nodeChanged = (obj: Named, deleted: boolean) => {
    const name = obj.metadata?.name;
    if (!name) return;
    const fp = fingerprint(obj.metadata?.labels);
    if (!deleted && nodeLabels.get(name) === fp) return;
    if (deleted) nodeLabels.delete(name);
    else nodeLabels.set(name, fp);
    queue.add(`node/${name}`);
    for (const k of keys.keysForAllPolicies()) queue.add(k);
  };
  informers.nodes.on('add', (o) => nodeChanged(o, false));
  informers.nodes.on('update', (o) => nodeChanged(o, false));
  informers.nodes.on('delete', (o) => nodeChanged(o, true));

  const emuvNodeChanged = (obj: Named) => {
    const name = obj.metadata?.name;
    if (name) queue.add(`node/${name}`);
  };
  for (const verb of ['add', 'update', 'delete'] as const) informers.emuvNodes.on(verb, emuvNodeChanged);
}

// ---- resilience ----

/** What the operator uses of a client-node informer (`makeInformer`): events, start/stop and its cache. */
export interface ListWatchInformer<T> {
  on(verb: 'add' | 'update' | 'delete', cb: (obj: T) => void): void;
  on(verb: 'error', cb: (err?: unknown) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  list(): ReadonlyArray<T>;
  get(name: string): T | undefined;
}

/** An informer that outlives watch errors, and says whether its cache has been filled. */
export interface ResilientInformer<T> extends InformerLike<T> {
  start(): Promise<void>;
  stop(): Promise<void>;
  list(): ReadonlyArray<T>;
  get(name: string): T | undefined;
  /** True once a start listed the objects: before, the cache is empty, not "there are none". */
  synced(): boolean;
}

/** The part of operator/clock.ts's Clock a restart needs. */
export interface RestartTimer {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** How long an informer waits after an error before it lists and watches again. */
export const INFORMER_RESTART_MS = 5000;

/**
 * Restarts `inner` `restartMs` after each error: a client-node informer reports a failed list or a watch
 * it cannot resume (anything but a 410 or a client-side timeout, which it handles) and then stays stopped,
 * so without this a flaky apiserver would leave the caches frozen for the life of the process.
 */
export function resilientInformer<T>(
  inner: ListWatchInformer<T>,
  o: {
    what: string;
    log: Pick<Logger, 'warn' | 'error'>;
    timer: RestartTimer;
    restartMs?: number;
  },
): ResilientInformer<T> {
  const restartMs = o.restartMs ?? INFORMER_RESTART_MS;
  let synced = false;
  let stopped = false;
  let failedThisStart = false;
  let pending: unknown = undefined;
  const cause = (err: unknown) => (err instanceof Error ? err.message : String(err));

  const start = async () => {
    stopped = false;
    failedThisStart = false;
    await inner.start();
    // client-node resolves start() even when its list failed (it reports that through 'error'): only a
    // start without an error has filled the cache.
    if (!failedThisStart) synced = true;
  };
  inner.on('error', (err) => {
    // Stopping aborts the watch, which the informer reports as an error: expected, not worth a line.
    if (stopped) return;
    failedThisStart = true;
    if (pending !== undefined) return; // one restart at a time
    o.log.warn(`informer failed; restarting in ${restartMs / 1000}s`, { informer: o.what, err: cause(err) });
    pending = o.timer.setTimeout(() => {
      pending = undefined;
      if (!stopped) start().catch((e: unknown) => o.log.error('informer restart failed', { informer: o.what, err: cause(e) }));
    }, restartMs);
  });
  return {
    on: (verb, cb) => inner.on(verb, cb),
    start,
    stop: async () => {
      stopped = true;
      if (pending !== undefined) o.timer.clearTimeout(pending);
      pending = undefined;
      await inner.stop();
    },
    list: () => inner.list(),
    get: (name) => inner.get(name),
    synced: () => synced,
  };
}

/**
 * A keyed work queue with client-go semantics: a key is queued at most once (dedupe); a key being
 * processed is never handed to a second worker; a key added while in flight is re-queued when `done`
 * is called; failed keys come back after a per-key exponential backoff until `forget`.
 */
import { errFields, type Logger } from '../../common/log.ts';
import type { Clock } from '../clock.ts';

export interface RateLimiter {
  /** Delay before the next retry of `key`; counts the retry. */
  when(key: string): number;
  forget(key: string): void;
  retries(key: string): number;
}

/** Per-key exponential backoff: baseMs * 2^failures, capped at maxMs. */
export class ExponentialRateLimiter implements RateLimiter {
  private failures = new Map<string, number>();
  private readonly baseMs: number;
  private readonly maxMs: number;

  constructor(opts: { baseMs?: number; maxMs?: number } = {}) {
    this.baseMs = opts.baseMs ?? 5;
    this.maxMs = opts.maxMs ?? 300_000;
  }

  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(n, 40));
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly delayed = new Map<string, { at: number; handle: unknown }>();
  private waiters: Array<(key: string | undefined) => void> = [];
  private shuttingDown = false;
  private readonly clock: Clock;
  private readonly limiter: RateLimiter;

  constructor(deps: { clock: Clock; rateLimiter?: RateLimiter }) {
    this.clock = deps.clock;
    this.limiter = deps.rateLimiter ?? new ExponentialRateLimiter();
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
    } else {
      this.queue.push(key);
    }
  }

  /** Adds `key` after `ms`; an earlier pending deadline for the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const at = this.clock.now() + ms;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) this.clock.clearTimeout(existing.handle);
    const handle = this.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { at, handle });
  }

  addRateLimited(key: string): void {
    this.addAfter(key, this.limiter.when(key));
  }

  forget(key: string): void {
    this.limiter.forget(key);
  }

  retries(key: string): number {
    return this.limiter.retries(key);
  }

  /** Next key to process, or undefined once the queue is shut down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks `key` finished; if it was added meanwhile, it is queued again now. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { handle } of this.delayed.values()) this.clock.clearTimeout(handle);
    this.delayed.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }

  len(): number {
    return this.queue.length;
  }

  inFlight(): number {
    return this.processing.size;
  }
}

/**
 * Runs `workers` loops that take keys and call `handle`. A thrown error requeues the key with backoff
 * (what only a change of the object can fix, such as an invalid policy, is not thrown: the reconciler
 * writes it to status); success forgets the key's failure count. Resolves when the queue shuts down.
 */
export async function runWorkers(
  queue: WorkQueue,
  handle: (key: string) => Promise<void>,
  opts: { workers: number; logger: Logger; onError?: (key: string, err: unknown) => void },
): Promise<void> {
  const loop = async () => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        await handle(key);
        queue.forget(key);
      } catch (err) {
        opts.onError?.(key, err);
        opts.logger.error('reconcile failed; will retry', { key, retries: queue.retries(key), ...errFields(err) });
        queue.addRateLimited(key);
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.workers }, loop));
}

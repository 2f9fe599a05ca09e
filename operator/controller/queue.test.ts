import { describe, expect, it } from 'vitest';
import { memoryLogger } from '../../common/log.ts';
import { FakeClock } from '../clock.ts';
import { ExponentialRateLimiter, WorkQueue, runWorkers } from './queue.ts';

describe('WorkQueue', () => {
  it('dedupes keys that are waiting', async () => {
    const q = new WorkQueue({ clock: new FakeClock() });
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });

  it('never hands a key in flight to a second worker; re-adds it on done', async () => {
    const q = new WorkQueue({ clock: new FakeClock() });
    q.add('a');
    const k = await q.get();
    q.add('a');
    expect(q.len()).toBe(0);
    q.done(k!);
    expect(q.len()).toBe(1);
    expect(await q.get()).toBe('a');
  });

  it('wakes a waiting worker', async () => {
    const q = new WorkQueue({ clock: new FakeClock() });
    const p = q.get();
    q.add('x');
    expect(await p).toBe('x');
    expect(q.inFlight()).toBe(1);
  });

  it('rate-limited retries back off per key until forget', () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock, rateLimiter: new ExponentialRateLimiter({ baseMs: 10, maxMs: 50 }) });
    q.addRateLimited('a');
    clock.advance(9);
    expect(q.len()).toBe(0);
    clock.advance(1);
    expect(q.len()).toBe(1);
    void q.get().then((k) => q.done(k!));
    q.addRateLimited('a'); // 20 ms
    q.addRateLimited('a'); // 40 ms, but the earlier deadline wins
    expect(q.retries('a')).toBe(3);
    q.forget('a');
    expect(q.retries('a')).toBe(0);
  });

  it('caps the backoff', () => {
    const r = new ExponentialRateLimiter({ baseMs: 5, maxMs: 1000 });
    const delays = Array.from({ length: 12 }, () => r.when('k'));
    expect(delays.slice(0, 4)).toEqual([5, 10, 20, 40]);
    expect(delays.at(-1)).toBe(1000);
  });

  it('shutDown releases waiters and drops delayed keys', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.addAfter('later', 100);
    const p = q.get();
    q.shutDown();
    expect(await p).toBeUndefined();
    expect(clock.pendingTimers()).toBe(0);
  });
});

describe('runWorkers', () => {
  it('retries failures with backoff, logs each with its cause, and never runs a key twice at once', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock, rateLimiter: new ExponentialRateLimiter({ baseMs: 100 }) });
    const calls: string[] = [];
    let running = 0;
    let maxRunning = 0;
    let failuresLeft = 2;
    const handler = async (key: string) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      calls.push(key);
      await new Promise((r) => setImmediate(r));
      running--;
      if (key === 'flaky' && failuresLeft-- > 0) throw new Error('patch failed', { cause: new Error('connection reset') });
    };
    const logger = memoryLogger();
    const done = runWorkers(q, handler, { workers: 3, logger });
    q.add('flaky');
    q.add('other');
    q.add('flaky');
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    // The second add arrived while the key was in flight: it runs again right after, not concurrently.
    expect(calls.filter((c) => c === 'flaky')).toHaveLength(2);
    clock.advance(99);
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect(calls.filter((c) => c === 'flaky')).toHaveLength(2);
    clock.advance(1);
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect(calls.filter((c) => c === 'flaky')).toHaveLength(3);
    expect(q.retries('flaky')).toBe(0);
    expect(calls.filter((c) => c === 'other')).toHaveLength(1);
    // Both failures logged with the cause, which String(err) would lose.
    expect(logger.entries.map((e) => [e.level, e.msg, e.fields])).toEqual([
      ['error', 'reconcile failed; will retry', { key: 'flaky', retries: 0, err: 'patch failed', causes: ['connection reset'] }],
      ['error', 'reconcile failed; will retry', { key: 'flaky', retries: 1, err: 'patch failed', causes: ['connection reset'] }],
    ]);
    expect(clock.pendingTimers()).toBe(0);
    expect(maxRunning).toBe(2);
    q.shutDown();
    await done;
  });
});

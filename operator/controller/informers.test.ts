import { describe, expect, it } from 'vitest';
import { memoryLogger } from '../../common/log.ts';
import { FakeClock } from '../clock.ts';
import { resilientInformer, wireHandlers } from './informers.ts';
import type { InformerLike, Named } from './informers.ts';

class FakeInformer implements InformerLike<Named> {
  handlers = new Map<string, Array<(o: Named) => void>>();
  on(verb: 'add' | 'update' | 'delete', cb: (o: Named) => void): void {
    this.handlers.set(verb, [...(this.handlers.get(verb) ?? []), cb]);
  }
  emit(verb: 'add' | 'update' | 'delete', o: Named): void {
    for (const cb of this.handlers.get(verb) ?? []) cb(o);
  }
}

function setup() {
  const inf = { policies: new FakeInformer(), nodes: new FakeInformer(), emuvNodes: new FakeInformer() };
  const added: string[] = [];
  wireHandlers(inf, { add: (k) => added.push(k) }, { keysForAllNodes: () => ['node/a', 'node/b'], keysForAllPolicies: () => ['policy/p'] });
  return { inf, added };
}

describe('wireHandlers', () => {
  it('a policy event fans out to every key', () => {
    const { inf, added } = setup();
    inf.policies.emit('update', { metadata: { name: 'p' } });
    expect(added).toEqual(['policy/p', 'node/a', 'node/b']);
  });

  it('a policy status write (same generation) does not fan out', () => {
    const { inf, added } = setup();
    inf.policies.emit('add', { metadata: { name: 'p', generation: 1 } });
    expect(added).toHaveLength(3);
    inf.policies.emit('update', { metadata: { name: 'p', generation: 1 } });
    expect(added).toHaveLength(3);
    inf.policies.emit('update', { metadata: { name: 'p', generation: 2 } });
    inf.policies.emit('delete', { metadata: { name: 'p', generation: 2 } });
    expect(added).toHaveLength(9);
  });

  it('node heartbeats with unchanged labels enqueue nothing; relabels and deletes do', () => {
    const { inf, added } = setup();
    inf.nodes.emit('add', { metadata: { name: 'a', labels: { x: '1' } } });
    inf.nodes.emit('update', { metadata: { name: 'a', labels: { x: '1' } } });
    expect(added).toEqual(['node/a', 'policy/p']);
    inf.nodes.emit('update', { metadata: { name: 'a', labels: { x: '2' } } });
    inf.nodes.emit('delete', { metadata: { name: 'a', labels: { x: '2' } } });
    expect(added).toHaveLength(6);
  });

  it('an EmuvNode event enqueues its own node key only', () => {
    const { inf, added } = setup();
    inf.emuvNodes.emit('update', { metadata: { name: 'b' } });
    inf.emuvNodes.emit('update', {});
    expect(added).toEqual(['node/b']);
  });
});

class FakeListWatch<T> {
  handlers = new Map<string, Array<(x: never) => void>>();
  starts = 0;
  stops = 0;
  items: T[] = [];
  /** What the next start does: list (ok) or report an error and resolve, as client-node does. */
  nextStart: 'ok' | 'list-fails' = 'ok';
  on(verb: string, cb: (x: never) => void): void {
    this.handlers.set(verb, [...(this.handlers.get(verb) ?? []), cb]);
  }
  emit(verb: string, x: unknown): void {
    for (const cb of this.handlers.get(verb) ?? []) cb(x as never);
  }
  async start(): Promise<void> {
    this.starts++;
    if (this.nextStart === 'list-fails') this.emit('error', new Error('list failed: connection refused'));
  }
  async stop(): Promise<void> {
    this.stops++;
    // client-node aborts the watch, and reports the abort as an error.
    this.emit('error', new Error('aborted'));
  }
  list(): ReadonlyArray<T> {
    return this.items;
  }
  get(name: string): T | undefined {
    return this.items.find((i) => (i as Named).metadata?.name === name);
  }
}

describe('resilientInformer', () => {
  function setup() {
    const inner = new FakeListWatch<Named>();
    const clock = new FakeClock();
    const log = memoryLogger();
    const inf = resilientInformer(inner, { what: '/api/v1/nodes', log, timer: clock });
    return { inner, clock, log, inf };
  }

  it('restarts 5 s after a watch error, once per error, and says so', async () => {
    const { inner, clock, log, inf } = setup();
    await inf.start();
    expect(inf.synced()).toBe(true);
    inner.emit('error', new Error('watch closed: 500'));
    clock.advance(4999);
    expect(inner.starts).toBe(1);
    clock.advance(1);
    expect(inner.starts).toBe(2);
    expect(log.entries).toContainEqual({
      level: 'warn',
      msg: 'informer failed; restarting in 5s',
      fields: { informer: '/api/v1/nodes', err: 'watch closed: 500' },
    });
  });

  it('is not synced while its list fails, and keeps trying until it succeeds', async () => {
    const { inner, clock, inf } = setup();
    inner.nextStart = 'list-fails';
    await inf.start();
    expect(inf.synced()).toBe(false);
    clock.advance(5000);
    await Promise.resolve();
    expect(inner.starts).toBe(2);
    expect(inf.synced()).toBe(false);
    inner.nextStart = 'ok';
    clock.advance(5000);
    await Promise.resolve();
    expect(inner.starts).toBe(3);
    expect(inf.synced()).toBe(true);
  });

  it('after stop: the abort it reports is not an error, and a pending restart is cancelled', async () => {
    const { inner, clock, log, inf } = setup();
    await inf.start();
    inner.emit('error', new Error('watch closed'));
    await inf.stop();
    expect(clock.pendingTimers()).toBe(0);
    clock.advance(60_000);
    expect(inner.starts).toBe(1);
    expect(log.entries.filter((e) => e.level === 'warn')).toHaveLength(1);
  });

  it('passes events and the cache through', async () => {
    const { inner, inf } = setup();
    const seen: string[] = [];
    inf.on('add', (o) => seen.push(o.metadata?.name ?? ''));
    inner.emit('add', { metadata: { name: 'a' } });
    inner.items = [{ metadata: { name: 'a' } }];
    expect(seen).toEqual(['a']);
    expect(inf.list()).toEqual([{ metadata: { name: 'a' } }]);
    expect(inf.get('a')).toEqual({ metadata: { name: 'a' } });
  });
});

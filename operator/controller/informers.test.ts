import { describe, expect, it } from 'vitest';
import { wireHandlers } from './informers.ts';
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

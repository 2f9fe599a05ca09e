import { nopLogger } from '../../common/log.ts';
import { describe, expect, it } from 'vitest';
import type { EmuvNode } from '../api/types.ts';
import { FakeClock } from '../clock.ts';
import { HttpError } from '../../test/fakes/json-patch.ts';
import { FakeKube } from '../../test/fakes/operator-kube.ts';
import { ArrayLister, emuvNode, node, policy } from '../../test/fakes/operator-objects.ts';
import { DEFAULT_NODE_CONFIG } from './desired.ts';
import { ApiEventRecorder } from './events.ts';
import { Reconciler, specPatch } from './reconcile.ts';

function fixture(init: { policies?: unknown[]; nodes?: ReturnType<typeof node>[]; emuvNodes?: EmuvNode[] } = {}) {
  const clock = new FakeClock();
  const api = new FakeKube();
  const caches = {
    policies: new ArrayLister<unknown>(init.policies ?? []),
    nodes: new ArrayLister(init.nodes ?? []),
    emuvNodes: new ArrayLister<EmuvNode>(init.emuvNodes ?? []),
  };
  const events = new ApiEventRecorder({ api, clock, instance: 'op-0', logger: nopLogger });
  const r = new Reconciler({ caches, api, events, clock, logger: nopLogger });
  return { api, caches, r, clock, events };
}

describe('Reconciler: node keys', () => {
  it('creates the EmuvNode of a new GPU node, owned by the Node, and records an event', async () => {
    const f = fixture({ policies: [policy('p', { slotsPerGpu: 8 })], nodes: [node('gpu-1')] });
    await f.r.reconcile('node/gpu-1');
    expect(f.api.summary()).toEqual(['create emuvnodes/gpu-1']);
    const created = f.api.emuvNodes.get('gpu-1')!;
    expect(created.spec).toEqual({ ...DEFAULT_NODE_CONFIG, slotsPerGpu: 8, policy: 'p' });
    expect(created.metadata.ownerReferences).toEqual([{ apiVersion: 'v1', kind: 'Node', name: 'gpu-1', uid: 'uid-gpu-1' }]);
    expect(created.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'emuv-operator' });
    expect(f.api.events.map((e) => [e.reason, e.involvedObject.kind, e.metadata.namespace])).toEqual([
      ['Configured', 'EmuvNode', 'default'],
    ]);
  });

  it('does nothing when the spec already matches', async () => {
    const f = fixture({
      policies: [policy('p')],
      nodes: [node('gpu-1')],
      emuvNodes: [emuvNode('gpu-1', { ...DEFAULT_NODE_CONFIG, policy: 'p' })],
    });
    await f.r.reconcile('node/gpu-1');
    expect(f.api.actions).toEqual([]);
  });

  it('patches only the fields that differ, with JSON Patch', async () => {
    const f = fixture({
      policies: [policy('p', { vramMode: 'Fixed' })],
      nodes: [node('gpu-1')],
      emuvNodes: [emuvNode('gpu-1', { ...DEFAULT_NODE_CONFIG, conflictingPolicies: ['x', 'y'] })],
    });
    f.api.emuvNodes.set('gpu-1', f.caches.emuvNodes.items[0]!);
    await f.r.reconcile('node/gpu-1');
    expect(f.api.actions.filter((a) => a.resource === 'emuvnodes')).toEqual([
      {
        verb: 'patch',
        resource: 'emuvnodes',
        name: 'gpu-1',
        body: [
          { op: 'remove', path: '/spec/conflictingPolicies' },
          { op: 'add', path: '/spec/policy', value: 'p' },
          { op: 'add', path: '/spec/vramMode', value: 'Fixed' },
        ],
      },
    ]);
    expect(f.api.emuvNodes.get('gpu-1')!.spec).toEqual({ ...DEFAULT_NODE_CONFIG, vramMode: 'Fixed', policy: 'p' });
    expect(f.api.events[0]?.message).toMatch(/^changed conflictingPolicies, policy, vramMode: /);
  });

  it('adds allocation to an EmuvNode an older operator wrote without it, and names it in the event', async () => {
    const { allocation: _none, ...older } = { ...DEFAULT_NODE_CONFIG, policy: 'p' };
    const f = fixture({ policies: [policy('p', { allocation: 'DRA' })], nodes: [node('gpu-1')], emuvNodes: [emuvNode('gpu-1', older)] });
    f.api.emuvNodes.set('gpu-1', f.caches.emuvNodes.items[0]!);
    await f.r.reconcile('node/gpu-1');
    expect(f.api.actions.find((a) => a.resource === 'emuvnodes')?.body).toEqual([{ op: 'add', path: '/spec/allocation', value: 'DRA' }]);
    expect(f.api.emuvNodes.get('gpu-1')!.spec.allocation).toBe('DRA');
    expect(f.api.events[0]?.message).toMatch(/^changed allocation: .*allocation=DRA$/);
  });

  it('on a tie keeps the config, names the conflict, and warns once per window', async () => {
    const current = { ...DEFAULT_NODE_CONFIG, slotsPerGpu: 2, policy: 'a' };
    const f = fixture({
      policies: [policy('a', { priority: 3 }), policy('b', { priority: 3, slotsPerGpu: 16 })],
      nodes: [node('gpu-1')],
      emuvNodes: [emuvNode('gpu-1', current)],
    });
    f.api.emuvNodes.set('gpu-1', f.caches.emuvNodes.items[0]!);
    await f.r.reconcile('node/gpu-1');
    expect(f.api.emuvNodes.get('gpu-1')!.spec).toEqual({ ...current, conflictingPolicies: ['a', 'b'] });
    f.caches.emuvNodes.items = [f.api.emuvNodes.get('gpu-1')!];
    await f.r.reconcile('node/gpu-1');
    await f.r.reconcile('node/gpu-1');
    expect(f.api.summary()).toEqual(['patch emuvnodes/gpu-1']);
    expect(f.api.events.filter((e) => e.reason === 'PolicyConflict')).toHaveLength(1);
    expect(f.api.events.find((e) => e.reason === 'PolicyConflict')).toMatchObject({ type: 'Warning' });
    f.clock.advance(11 * 60_000);
    await f.r.reconcile('node/gpu-1');
    expect(f.api.events.filter((e) => e.reason === 'PolicyConflict')).toHaveLength(2);
  });

  it('ignores invalid policies when merging', async () => {
    const bad = { apiVersion: 'emuv.io/v1alpha1', kind: 'EmuvPolicy', metadata: { name: 'bad' }, spec: { priority: 9, slotsPerGpu: 0 } };
    const f = fixture({ policies: [bad, policy('ok', { slotsPerGpu: 3 })], nodes: [node('gpu-1')] });
    await f.r.reconcile('node/gpu-1');
    expect(f.api.emuvNodes.get('gpu-1')!.spec.policy).toBe('ok');
  });

  it('deletes a managed EmuvNode whose Node is gone, never an unmanaged one', async () => {
    const f = fixture({ emuvNodes: [emuvNode('gone', DEFAULT_NODE_CONFIG), emuvNode('hand-made', DEFAULT_NODE_CONFIG, false)] });
    f.api.emuvNodes.set('gone', f.caches.emuvNodes.items[0]!);
    await f.r.reconcile('node/gone');
    await f.r.reconcile('node/hand-made');
    expect(f.api.summary()).toEqual(['delete emuvnodes/gone']);
  });

  it('treats a node without the GPU label as not an emuv node', async () => {
    const f = fixture({ nodes: [node('cpu-1', {}, false)] });
    await f.r.reconcile('node/cpu-1');
    expect(f.api.actions).toEqual([]);
  });

  it('a failed event write neither fails nor delays the reconcile', async () => {
    const f = fixture({ nodes: [node('gpu-1')] });
    f.api.failNext.set('create:events', new HttpError(500, 'events are down'));
    await f.r.reconcile('node/gpu-1');
    expect(f.api.emuvNodes.has('gpu-1')).toBe(true);
    await f.events.flush();
  });

  it('wraps API errors so the worker retries', async () => {
    const f = fixture({ nodes: [node('gpu-1')] });
    f.api.failNext.set('create:emuvnodes', new HttpError(500, 'etcd timeout'));
    await expect(f.r.reconcile('node/gpu-1')).rejects.toThrow('failed to create EmuvNode gpu-1');
  });
});

describe('Reconciler: policy keys', () => {
  it('writes status once and not again when nothing changed', async () => {
    const f = fixture({ policies: [policy('p')], nodes: [node('gpu-1'), node('gpu-2'), node('cpu', {}, false)] });
    await f.r.reconcile('policy/p');
    expect(f.api.summary()).toEqual(['patch emuvpolicies/status/p']);
    const status = f.api.policyStatus.get('p') as Record<string, unknown>;
    expect(status).toMatchObject({ observedGeneration: 1, matchedNodes: 2, appliedNodes: 2, conflictCount: 0 });
    (f.caches.policies.items[0] as { status?: unknown }).status = status;
    f.clock.advance(60_000);
    await f.r.reconcile('policy/p');
    expect(f.api.summary()).toHaveLength(1);
  });

  it('reports an invalid policy in status and an event', async () => {
    const bad = {
      apiVersion: 'emuv.io/v1alpha1',
      kind: 'EmuvPolicy',
      metadata: { name: 'bad', generation: 2 },
      spec: { vramMode: 'Turbo' },
    };
    const f = fixture({ policies: [bad] });
    await f.r.reconcile('policy/bad');
    const status = f.api.policyStatus.get('bad') as { conditions: Array<{ reason: string; message: string }> };
    expect(status.conditions[0]).toMatchObject({ reason: 'Invalid', message: 'spec.vramMode: must be one of Fill, Fixed (got "Turbo")' });
    expect(f.api.events.map((e) => e.reason)).toEqual(['InvalidPolicy']);
  });

  it('a deleted policy needs no work', async () => {
    const f = fixture();
    await f.r.reconcile('policy/none');
    await f.r.reconcile('bogus/key');
    expect(f.api.actions).toEqual([]);
  });

  it('enumerates keys for fan-out', () => {
    const f = fixture({
      policies: [policy('a'), policy('b')],
      nodes: [node('g1'), node('c1', {}, false)],
      emuvNodes: [emuvNode('old', DEFAULT_NODE_CONFIG)],
    });
    expect(f.r.keysForAllPolicies()).toEqual(['policy/a', 'policy/b']);
    expect(f.r.keysForAllNodes().sort()).toEqual(['node/g1', 'node/old']);
  });
});

describe('specPatch', () => {
  it('adds the whole spec when there is none', () => {
    expect(specPatch(undefined, DEFAULT_NODE_CONFIG)).toEqual([{ op: 'add', path: '/spec', value: DEFAULT_NODE_CONFIG }]);
  });
  it('is empty for equal specs', () => {
    expect(specPatch({ ...DEFAULT_NODE_CONFIG }, DEFAULT_NODE_CONFIG)).toEqual([]);
  });
});

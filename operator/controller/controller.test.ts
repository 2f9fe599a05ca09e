import { Registry } from 'prom-client';
import { nopLogger } from '../../common/log.ts';
import { describe, expect, it } from 'vitest';
import type { EmuvNode } from '../api/types.ts';
import { FakeClock } from '../clock.ts';
import { FakeKube } from '../../test/fakes/operator-kube.ts';
import { createOperatorMetrics } from '../metrics.ts';
import { ArrayLister, node, policy } from '../../test/fakes/operator-objects.ts';
import type { Loose } from '../../test/fakes/operator-objects.ts';
import { CachedPolicySource } from '../webhook/policy-source.ts';
import { Controller } from './controller.ts';
import type { StartableInformer } from './controller.ts';
import { ApiEventRecorder } from './events.ts';
import type { Named } from './informers.ts';
import { WorkQueue } from './queue.ts';
import { Reconciler } from './reconcile.ts';

class FakeInformer implements StartableInformer {
  started = 0;
  stopped = 0;
  private cbs = new Map<string, Array<(o: Named) => void>>();
  on(verb: 'add' | 'update' | 'delete', cb: (o: Named) => void): void {
    this.cbs.set(verb, [...(this.cbs.get(verb) ?? []), cb]);
  }
  emit(verb: 'add' | 'update' | 'delete', o: Named): void {
    for (const cb of this.cbs.get(verb) ?? []) cb(o);
  }
  async start() {
    this.started++;
  }
  async stop() {
    this.stopped++;
  }
}

const settle = async () => {
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
};

describe('Controller', () => {
  it('converges EmuvNodes and policy status, follows a policy change, resyncs, and stops cleanly', async () => {
    const clock = new FakeClock();
    const api = new FakeKube();
    const caches = {
      policies: new ArrayLister<unknown>([policy('base', { slotsPerGpu: 4 })]),
      nodes: new ArrayLister([node('g1'), node('g2'), node('cpu', {}, false)]),
      emuvNodes: new ArrayLister<EmuvNode>([]),
    };
    // The fake API writes through to the EmuvNode cache, as the informer would.
    const origCreate = api.createEmuvNode.bind(api);
    api.createEmuvNode = async (o) => {
      const c = await origCreate(o);
      caches.emuvNodes.items.push(c);
      return c;
    };
    const origPatch = api.patchEmuvNode.bind(api);
    api.patchEmuvNode = async (n, ops) => {
      const c = await origPatch(n, ops);
      caches.emuvNodes.items = caches.emuvNodes.items.map((e) => (e.metadata.name === n ? c : e));
      return c;
    };
    const origStatus = api.patchEmuvPolicyStatus.bind(api);
    api.patchEmuvPolicyStatus = async (n, ops) => {
      await origStatus(n, ops);
      caches.policies.items = caches.policies.items.map((p: Loose) =>
        p.metadata.name === n ? { ...p, status: api.policyStatus.get(n) } : p,
      );
    };
    const informers = { policies: new FakeInformer(), nodes: new FakeInformer(), emuvNodes: new FakeInformer() };
    const registry = new Registry();
    const metrics = createOperatorMetrics(registry);
    const reconciler = new Reconciler({
      caches,
      api,
      clock,
      logger: nopLogger,
      events: new ApiEventRecorder({ api, clock, instance: 't', logger: nopLogger }),
    });
    const ctl = new Controller({
      reconciler,
      queue: new WorkQueue({ clock }),
      informers,
      clock,
      logger: nopLogger,
      metrics,
      workers: 2,
      resyncMs: 60_000,
    });
    await ctl.start();
    await settle();
    expect([...api.emuvNodes.keys()].sort()).toEqual(['g1', 'g2']);
    expect(api.policyStatus.get('base')).toMatchObject({ matchedNodes: 2, appliedNodes: 2 });

    caches.policies.items = [
      policy('base', { slotsPerGpu: 4 }),
      policy('big', { priority: 5, slotsPerGpu: 32, nodeSelector: { matchLabels: { 'emuv.io/gpu.count': '1' } } }),
    ];
    informers.policies.emit('add', { metadata: { name: 'big' } });
    await settle();
    expect(api.emuvNodes.get('g1')!.spec).toMatchObject({ slotsPerGpu: 32, policy: 'big' });
    expect(api.policyStatus.get('base')).toMatchObject({ matchedNodes: 2, appliedNodes: 0, conflictCount: 2 });

    // Drift: someone edits an EmuvNode behind our back; the resync repairs it even without an event.
    api.emuvNodes.get('g2')!.spec.slotsPerGpu = 1;
    caches.emuvNodes.items = [...api.emuvNodes.values()];
    const before = api.summary().length;
    clock.advance(60_000);
    await settle();
    expect(api.emuvNodes.get('g2')!.spec.slotsPerGpu).toBe(32);
    expect(api.summary().slice(before)).toEqual(['patch emuvnodes/g2']);

    expect(await registry.getSingleMetricAsString('emuv_reconcile_total')).toMatch(/kind="node",result="success"} \d+/);
    await ctl.stop();
    expect(informers.nodes.stopped).toBe(1);
    expect(clock.pendingTimers()).toBe(0);
  });
});

describe('CachedPolicySource', () => {
  it('parses each policy object once and skips invalid ones', () => {
    const good = policy('good', { namespaceSelector: { matchLabels: { team: 'ml' } } });
    const bad = { apiVersion: 'emuv.io/v1alpha1', kind: 'EmuvPolicy', metadata: { name: 'bad' }, spec: { slotsPerGpu: 0 } };
    const namespaces = new ArrayLister([{ metadata: { name: 'ml', labels: { team: 'ml' } } }]);
    const src = new CachedPolicySource({ policies: new ArrayLister<unknown>([good, bad]), namespaces });
    expect(src.validPolicies().map((p) => p.metadata.name)).toEqual(['good']);
    expect(src.forNamespace('ml').deniedReason).toBeUndefined();
    expect(src.forNamespace('other').deniedReason).toContain('namespace "other" may not ask');
  });
});

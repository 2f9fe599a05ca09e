import { nopLogger } from '../../common/log.ts';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../clock.ts';
import { HttpError } from '../../test/fakes/json-patch.ts';
import { FakeKube } from '../../test/fakes/operator-kube.ts';
import { LeaderElector } from './leader.ts';

const cfg = (identity: string) => ({ namespace: 'emuv-system', name: 'emuv-operator', identity });

describe('LeaderElector', () => {
  it('creates the lease when absent and renews it', async () => {
    const clock = new FakeClock();
    const api = new FakeKube();
    const a = new LeaderElector({ api, clock, config: cfg('a'), logger: nopLogger });
    expect(await a.tryAcquireOrRenew()).toBe(true);
    clock.advance(2000);
    expect(await a.tryAcquireOrRenew()).toBe(true);
    const lease = api.leases.get('emuv-system/emuv-operator')!;
    expect(lease.spec).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 15, leaseTransitions: 0 });
    expect(lease.spec.renewTime).toBe(new Date(clock.now()).toISOString());
    expect(api.summary()).toEqual([
      'get leases/emuv-operator',
      'create leases/emuv-operator',
      'get leases/emuv-operator',
      'update leases/emuv-operator',
    ]);
  });

  it('a second replica waits while the holder renews, takes over after the lease expires', async () => {
    const clock = new FakeClock();
    const api = new FakeKube();
    const a = new LeaderElector({ api, clock, config: cfg('a'), logger: nopLogger });
    const b = new LeaderElector({ api, clock, config: cfg('b'), logger: nopLogger });
    await a.tryAcquireOrRenew();
    for (let i = 0; i < 10; i++) {
      clock.advance(2000);
      expect(await a.tryAcquireOrRenew()).toBe(true);
      expect(await b.tryAcquireOrRenew()).toBe(false);
    }
    // a stops renewing; b must observe an unchanged record for a full lease duration.
    clock.advance(14_000);
    expect(await b.tryAcquireOrRenew()).toBe(false);
    clock.advance(2_000);
    expect(await b.tryAcquireOrRenew()).toBe(true);
    expect(api.leases.get('emuv-system/emuv-operator')!.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    expect(await a.tryAcquireOrRenew()).toBe(false);
  });

  it('loses a race on resourceVersion instead of double-acquiring', async () => {
    const clock = new FakeClock();
    const api = new FakeKube();
    const a = new LeaderElector({ api, clock, config: cfg('a'), logger: nopLogger });
    await a.tryAcquireOrRenew();
    api.failNext.set('update:leases', new HttpError(409, 'conflict'));
    clock.advance(2000);
    expect(await a.tryAcquireOrRenew()).toBe(false);
    expect(a.isLeader()).toBe(false);
  });

  it('survives transient errors until the renew deadline', async () => {
    const clock = new FakeClock();
    const api = new FakeKube();
    const a = new LeaderElector({ api, clock, config: cfg('a'), logger: nopLogger });
    await a.tryAcquireOrRenew();
    clock.advance(5_000);
    api.failNext.set('get:leases', new HttpError(503, 'unavailable'));
    expect(await a.tryAcquireOrRenew()).toBe(true);
    clock.advance(6_000);
    api.failNext.set('get:leases', new HttpError(503, 'unavailable'));
    expect(await a.tryAcquireOrRenew()).toBe(false);
  });

  it('run() calls the callbacks once each', async () => {
    const clock = new FakeClock();
    const api = new FakeKube();
    const a = new LeaderElector({ api, clock, config: cfg('a'), logger: nopLogger });
    const seen: string[] = [];
    a.run({ onStartedLeading: () => seen.push('start'), onStoppedLeading: () => seen.push('stop') });
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(['start']);
    // Someone else takes the lease.
    const l = api.leases.get('emuv-system/emuv-operator')!;
    l.spec.holderIdentity = 'intruder';
    clock.advance(2000);
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(['start', 'stop']);
    clock.advance(10_000);
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(['start', 'stop']);
    expect(clock.pendingTimers()).toBe(0);
  });
});

import { describe, expect, it } from 'vitest';
import { memoryLogger, nopLogger } from '../../common/log.ts';
import { FakeClock } from '../clock.ts';
import { HttpError } from '../../test/fakes/json-patch.ts';
import { FakeKube } from '../../test/fakes/operator-kube.ts';
import { ApiEventRecorder } from './events.ts';

const ref = (name: string) => ({ apiVersion: 'emuv.io/v1alpha1', kind: 'EmuvNode', name });

describe('ApiEventRecorder', () => {
  it('writes at most maxInFlight events at once and delivers them all', async () => {
    const api = new FakeKube();
    let inFlight = 0;
    let peak = 0;
    const orig = api.createEvent.bind(api);
    api.createEvent = async (ev) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      return orig(ev);
    };
    const rec = new ApiEventRecorder({ api, clock: new FakeClock(), instance: 'i', maxInFlight: 3, logger: nopLogger });
    for (let i = 0; i < 20; i++) await rec.record(ref(`n${i}`), 'Normal', 'Configured', 'm');
    await rec.flush();
    expect(api.events).toHaveLength(20);
    expect(peak).toBe(3);
  });

  it('deduplicates within the window and drops the oldest beyond the backlog', async () => {
    const api = new FakeKube();
    const clock = new FakeClock();
    const log = memoryLogger();
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const orig = api.createEvent.bind(api);
    api.createEvent = async (ev) => {
      await gate;
      return orig(ev);
    };
    const rec = new ApiEventRecorder({ api, clock, instance: 'i', maxInFlight: 1, maxBacklog: 2, logger: log });
    await rec.record(ref('a'), 'Warning', 'PolicyConflict', 'same');
    await rec.record(ref('a'), 'Warning', 'PolicyConflict', 'same');
    for (const n of ['b', 'c', 'd']) await rec.record(ref(n), 'Normal', 'Configured', 'm');
    release();
    await rec.flush();
    expect(api.events.map((e) => e.involvedObject.name)).toEqual(['a', 'c', 'd']);
    expect(log.entries.map((e) => e.msg)).toEqual(['event backlog full; dropping events']);
  });

  it('logs and swallows a failed write', async () => {
    const api = new FakeKube();
    const log = memoryLogger();
    api.failNext.set('create:events', new HttpError(403, 'forbidden'));
    const rec = new ApiEventRecorder({ api, clock: new FakeClock(), instance: 'i', logger: log });
    await rec.record(ref('a'), 'Normal', 'Configured', 'm');
    await rec.flush();
    expect(log.entries[0]).toMatchObject({ level: 'warn', msg: 'failed to record event' });
  });
});

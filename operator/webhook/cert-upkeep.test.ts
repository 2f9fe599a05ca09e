import { describe, expect, it } from 'vitest';
import { memoryLogger } from '../../common/log.ts';
import { FakeClock } from '../clock.ts';
import { startCertUpkeep, type TlsPair } from './cert-upkeep.ts';

const settle = () => new Promise((r) => setImmediate(r));

function setup(o: { pending?: () => boolean; load?: () => Promise<TlsPair> } = {}) {
  const clock = new FakeClock();
  const log = memoryLogger();
  let loads = 0;
  const applied: TlsPair[] = [];
  const upkeep = startCertUpkeep({
    load: o.load ?? (async () => ({ certPem: `cert-${++loads}`, keyPem: 'key' })),
    apply: (tls) => applied.push(tls),
    checkIntervalMs: 3_600_000,
    caBundlePending: o.pending ?? (() => false),
    timer: clock,
    log,
  });
  return { clock, log, applied, upkeep, loads: () => loads };
}

describe('startCertUpkeep', () => {
  it('checks every interval and hands each certificate to the server', async () => {
    const { clock, applied, upkeep } = setup();
    clock.advance(3_599_999);
    await settle();
    expect(applied).toEqual([]);
    clock.advance(1);
    await settle();
    clock.advance(3_600_000);
    await settle();
    expect(applied.map((t) => t.certPem)).toEqual(['cert-1', 'cert-2']);
    await upkeep.stop();
    expect(clock.pendingTimers()).toBe(0);
  });

  it('while the caBundle is pending, checks every 5 s; once written, only hourly again', async () => {
    let pending = true;
    const { clock, applied, upkeep } = setup({ pending: () => pending });
    for (let i = 0; i < 3; i++) {
      clock.advance(5000);
      await settle();
    }
    expect(applied).toHaveLength(3);
    pending = false;
    for (let i = 0; i < 3; i++) {
      clock.advance(5000);
      await settle();
    }
    expect(applied).toHaveLength(3);
    await upkeep.stop();
  });

  it('a failed check is logged and the server keeps its certificate; the next check tries again', async () => {
    let fail = true;
    const { clock, log, applied, upkeep } = setup({
      load: async () => {
        if (fail) throw new Error('secret unreadable', { cause: new Error('403') });
        return { certPem: 'c', keyPem: 'k' };
      },
    });
    clock.advance(3_600_000);
    await settle();
    expect(applied).toEqual([]);
    expect(log.entries).toContainEqual({
      level: 'error',
      msg: 'certificate check failed',
      fields: { err: 'secret unreadable', causes: ['403'] },
    });
    fail = false;
    clock.advance(3_600_000);
    await settle();
    expect(applied).toEqual([{ certPem: 'c', keyPem: 'k' }]);
    await upkeep.stop();
  });

  it('one check at a time: the 5 s loop joins an hourly check in flight', async () => {
    let release: () => void = () => {};
    let loads = 0;
    const { clock, upkeep } = setup({
      pending: () => true,
      load: async () => {
        loads++;
        await new Promise<void>((r) => (release = r));
        return { certPem: 'c', keyPem: 'k' };
      },
    });
    clock.advance(5000);
    clock.advance(5000);
    clock.advance(5000);
    await settle();
    expect(loads).toBe(1);
    release();
    await upkeep.stop();
  });
});

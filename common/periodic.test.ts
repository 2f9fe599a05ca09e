import { describe, expect, it } from 'vitest';
import { Periodic, type Timer } from './periodic.ts';

/** A manual timer: timeouts fire only when advance() passes them. */
class FakeClock implements Timer {
  #now = 0;
  #seq = 0;
  #timers = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): unknown {
    this.#timers.set(++this.#seq, { at: this.#now + ms, fn });
    return this.#seq;
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const due = [...this.#timers].filter(([, t]) => t.at <= end).sort(([, a], [, b]) => a.at - b.at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.#now = due[1].at;
      due[1].fn();
    }
    this.#now = end;
  }
  pendingTimers(): number {
    return this.#timers.size;
  }
}

function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open };
}

describe('Periodic', () => {
  it('repeats the pass every interval on the given timer until stopped', async () => {
    const clock = new FakeClock();
    let passes = 0;
    const loop = new Periodic(async () => void passes++, 1000, clock);
    loop.start();
    loop.start(); // a second start does not add a second timer
    for (let i = 0; i < 3; i++) {
      clock.advance(1000);
      await new Promise((r) => setImmediate(r)); // the pass of this tick settles
    }
    expect(passes).toBe(3);
    loop.stop();
    clock.advance(5000);
    expect(passes).toBe(3);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('concurrent runs share the pass in flight; ticks during a slow pass do not pile up', async () => {
    const clock = new FakeClock();
    const g = gate();
    let passes = 0;
    const loop = new Periodic(
      async () => {
        passes++;
        await g.opened;
      },
      10,
      clock,
    );
    loop.start();
    const first = loop.run();
    expect(loop.run()).toBe(first);
    clock.advance(100); // ten ticks while the pass is held
    expect(passes).toBe(1);
    g.open();
    await first;
    loop.stop();
  });

  it('a failing pass neither stops the loop nor escapes as an unhandled rejection', async () => {
    const clock = new FakeClock();
    let passes = 0;
    const loop = new Periodic(
      async () => {
        passes++;
        throw new Error('pass failed');
      },
      10,
      clock,
    );
    await expect(loop.run()).rejects.toThrow('pass failed');
    loop.start();
    clock.advance(10);
    await new Promise((r) => setImmediate(r));
    clock.advance(10);
    await new Promise((r) => setImmediate(r));
    expect(passes).toBe(3);
    loop.stop();
  });

  it('halt waits for the pass in flight and starts no other', async () => {
    const g = gate();
    let passes = 0;
    const loop = new Periodic(async () => {
      passes++;
      await g.opened;
    }, 5);
    loop.start();
    void loop.run();
    let halted = false;
    const halting = loop.halt().then(() => (halted = true));
    await new Promise((r) => setTimeout(r, 30));
    expect(halted).toBe(false);
    g.open();
    await halting;
    await loop.run();
    loop.start();
    await new Promise((r) => setTimeout(r, 30));
    expect(passes).toBe(1);
  });
});

/**
 * A level-triggered loop, the one every periodic job of emuv runs on (the agent's health poll, usage
 * pass, node status and EmuvNode resyncs; the operator's certificate checks): `run()` does one pass
 * (concurrent calls share the pass in flight, so a slow pass delays the next instead of piling passes
 * up), `start()` repeats it every interval until `stop()`, `halt()` ends it for good. The timer does not
 * keep the process alive.
 */

/** Where the timer comes from: the process's by default, a manual clock in tests (operator/clock.ts). */
export interface Timer {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const processTimer: Timer = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export class Periodic {
  readonly #pass: () => Promise<void>;
  readonly #intervalMs: number;
  readonly #timer: Timer;
  #handle: unknown = null;
  #running: Promise<void> | null = null;
  #halted = false;

  constructor(pass: () => Promise<void>, intervalMs: number, timer: Timer = processTimer) {
    this.#pass = pass;
    this.#intervalMs = intervalMs;
    this.#timer = timer;
  }

  run(): Promise<void> {
    if (this.#halted) return Promise.resolve();
    this.#running ??= this.#pass().finally(() => (this.#running = null));
    return this.#running;
  }

  start(): void {
    if (this.#handle !== null || this.#halted) return;
    this.#arm();
  }

  /** One timeout per tick, re-armed as it fires (an interval, on any Timer). */
  #arm(): void {
    this.#handle = this.#timer.setTimeout(() => {
      if (this.#handle === null) return;
      this.#arm();
      // Failures are the pass's to report; the loop goes on.
      this.run().catch(() => {});
    }, this.#intervalMs);
    (this.#handle as { unref?: () => void } | null)?.unref?.();
  }

  stop(): void {
    if (this.#handle !== null) this.#timer.clearTimeout(this.#handle);
    this.#handle = null;
  }

  /**
   * Stops for good: no pass starts any more, and this resolves once the pass in flight (if any) is over.
   * What a late pass must not undo (the uninstall cleanup) waits for it.
   */
  async halt(): Promise<void> {
    this.#halted = true;
    this.stop();
    while (this.#running) await this.#running.catch(() => {});
  }
}

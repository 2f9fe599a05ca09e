/**
 * A level-triggered loop: `run()` does one pass (concurrent calls share the pass in flight), `start()`
 * repeats it every interval until `stop()`, `halt()` ends it for good. The timer does not keep the
 * process alive.
 */
export class Periodic {
  readonly #pass: () => Promise<void>;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #halted = false;

  constructor(pass: () => Promise<void>, intervalMs: number) {
    this.#pass = pass;
    this.#intervalMs = intervalMs;
  }

  run(): Promise<void> {
    if (this.#halted) return Promise.resolve();
    this.#running ??= this.#pass().finally(() => (this.#running = null));
    return this.#running;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.run(), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
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

/**
 * A level-triggered loop: `run()` does one pass (concurrent calls share the pass in flight), `start()`
 * repeats it every interval until `stop()`. The timer does not keep the process alive.
 */
export class Periodic {
  readonly #pass: () => Promise<void>;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;

  constructor(pass: () => Promise<void>, intervalMs: number) {
    this.#pass = pass;
    this.#intervalMs = intervalMs;
  }

  run(): Promise<void> {
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
   * Resolves once no pass is in flight. After stop(), nothing runs once this resolves (unless run() is
   * called again): what must not be undone by a late pass (uninstall) waits for it.
   */
  async settled(): Promise<void> {
    while (this.#running) await this.#running.catch(() => {});
  }
}

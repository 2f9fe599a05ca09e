/**
 * The live `emuv top` loop: fetch, render, repeat every second; `s` cycles the sort key, `q` quits.
 * `--once` renders one snapshot and returns (for scripts).
 */
import { renderTop, SORT_KEYS, type SortKey } from './render.ts';
import type { StatusSource } from './sources.ts';

export interface TopOptions {
  source: StatusSource;
  once: boolean;
  sort: SortKey;
  intervalMs: number;
  out: NodeJS.WriteStream;
  input: NodeJS.ReadStream;
}

export async function runTop(o: TopOptions): Promise<void> {
  if (o.once) {
    const doc = await o.source.fetch();
    o.out.write(`${renderTop(doc, { width: o.out.columns ?? 100, sort: o.sort, source: o.source.describe }).join('\n')}\n`);
    return;
  }
  let sort = o.sort;
  let stop: () => void = () => {};
  const done = new Promise<void>((r) => (stop = r));
  const draw = async () => {
    try {
      const doc = await o.source.fetch();
      const lines = renderTop(doc, { width: o.out.columns ?? 100, sort, source: o.source.describe });
      o.out.write(
        `\x1b[H\x1b[2J${lines.join('\n')}\n\n(q: quit, s: sort by ${SORT_KEYS[(SORT_KEYS.indexOf(sort) + 1) % SORT_KEYS.length]})\n`,
      );
    } catch (err) {
      o.out.write(`\x1b[H\x1b[2Jemuv top: ${(err as Error).message}; retrying\n`);
    }
  };
  if (o.input.isTTY) o.input.setRawMode(true);
  o.input.resume();
  o.input.on('data', (key: Buffer) => {
    const k = key.toString();
    if (k === 'q' || k === '\u0003') stop();
    if (k === 's') {
      sort = SORT_KEYS[(SORT_KEYS.indexOf(sort) + 1) % SORT_KEYS.length]!;
      void draw();
    }
  });
  await draw();
  const timer = setInterval(() => void draw(), o.intervalMs);
  await done;
  clearInterval(timer);
  if (o.input.isTTY) o.input.setRawMode(false);
  o.input.pause();
}

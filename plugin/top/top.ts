/**
 * The live `emuv top`: the terminal I/O around the pure stages (state.ts: documents and keys into
 * state; layout.ts: state and size into lines; frame.ts: lines into text with or without colour).
 * It takes the terminal (alternate screen, hidden cursor, raw input), fetches a document every
 * interval unless paused, redraws on every document, key and resize, and gives the terminal back as it
 * found it on q, Ctrl-C, SIGINT, SIGTERM, SIGHUP, and on an exception (rethrown once restored).
 * `--once` renders one snapshot with render.ts and returns (for scripts; its output is kept stable).
 */
import { writeSync } from 'node:fs';
import { colorEnabled, paint, width, type ColorMode } from './frame.ts';
import { layout } from './layout.ts';
import { renderTop, type SortKey } from './render.ts';
import type { StatusSource } from './sources.ts';
import { applyKey, fetchFailed, ingest, initialState, nodeSwitched, parseKeys, type ViewerState } from './state.ts';

export interface TopOptions {
  source: StatusSource;
  once: boolean;
  sort: SortKey;
  intervalMs: number;
  out: NodeJS.WriteStream;
  input: NodeJS.ReadStream;
  /** --color; auto when unspecified */
  color?: ColorMode;
  /** for NO_COLOR; process.env when unspecified */
  env?: Readonly<Record<string, string | undefined>>;
}

const ENTER = '\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J';
const LEAVE = '\x1b[0m\x1b[?25h\x1b[?1049l';

/** The frame as the terminal gets it: from the top left, each line cleared to its end, the rest of the screen cleared. */
export function frameText(lines: ReturnType<typeof layout>, cols: number, color: boolean): string {
  // Raw mode turns output processing off: a line ends with \r\n. A line of the full width must not be
  // followed by an erase (the cursor waits on its last column, and the erase would take that character).
  const body = lines.map((l) => `${paint(l, color)}${width(l) < cols ? '\x1b[K' : ''}`).join('\r\n');
  return `\x1b[H${body}\x1b[J`;
}

export async function runTop(o: TopOptions): Promise<void> {
  if (o.once) {
    const doc = await o.source.fetch();
    o.out.write(`${renderTop(doc, { width: o.out.columns ?? 100, sort: o.sort, source: o.source.describe }).join('\n')}\n`);
    return;
  }
  const color = colorEnabled(o.color ?? 'auto', o.env ?? process.env, o.out.isTTY === true);
  let state: ViewerState = initialState({ sort: o.sort });
  let finish: () => void = () => {};
  let fail: (err: unknown) => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  done.catch(() => {}); // awaited below; a failure before that is not an unhandled rejection

  const draw = () => {
    const size = { cols: o.out.columns ?? 80, rows: o.out.rows ?? 24 };
    o.out.write(frameText(layout(state, size, o.source.describe), size.cols, color));
  };
  const update = (next: ViewerState) => {
    state = next;
    if (state.quit) finish();
    else draw();
  };
  let fetching = false;
  // Bumped when another node is picked: a fetch begun for the last node is not shown as this one's.
  let generation = 0;
  const tick = async () => {
    if (state.paused || fetching || state.quit) return;
    fetching = true;
    const gen = generation;
    try {
      const doc = await o.source.fetch();
      if (gen === generation) update(ingest(state, doc, o.source.processes?.() ?? null));
    } catch (err) {
      if (gen === generation) update(fetchFailed(state, (err as Error).message));
    } finally {
      fetching = false;
    }
  };
  const guard =
    <A extends unknown[]>(f: (...a: A) => void) =>
    (...a: A) => {
      try {
        f(...a);
      } catch (err) {
        fail(err);
      }
    };
  const onData = guard((data: Buffer) => {
    for (const key of parseKeys(data.toString('utf8'))) {
      const wasPaused = state.paused;
      state = applyKey(state, key);
      if (state.quit) break;
      if (state.nodeStep !== 0) {
        // Only a source of several nodes can move; for the others `[`/`]` do nothing.
        if (o.source.pick) {
          o.source.pick(state.nodeStep);
          generation += 1;
          state = nodeSwitched(state);
          void tick().catch(fail);
        } else state = { ...state, nodeStep: 0 };
      }
      if (wasPaused && !state.paused) void tick().catch(fail);
    }
    update(state);
  });
  const onResize = guard(draw);
  const onSignal = () => update({ ...state, quit: true });
  // Last resort: whatever ends the process, the terminal is not left in the alternate screen, raw.
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    try {
      if (o.input.isTTY) o.input.setRawMode(false);
    } catch {
      // The terminal is gone (hang-up): nothing to restore.
    }
    try {
      const fd = (o.out as { fd?: unknown }).fd;
      if (typeof fd === 'number') writeSync(fd, LEAVE);
      else o.out.write(LEAVE);
    } catch {
      // idem
    }
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

  o.out.write(ENTER);
  process.once('exit', restore);
  for (const s of signals) process.on(s, onSignal);
  o.out.on('resize', onResize);
  if (o.input.isTTY) o.input.setRawMode(true);
  o.input.on('data', onData);
  o.input.resume();
  const timer = setInterval(() => void tick().catch(fail), o.intervalMs);
  try {
    draw();
    await tick();
    await done;
  } finally {
    clearInterval(timer);
    o.input.off('data', onData);
    o.input.pause();
    o.out.off('resize', onResize);
    for (const s of signals) process.off(s, onSignal);
    restore();
    process.off('exit', restore);
  }
}

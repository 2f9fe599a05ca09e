import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { StatusSource } from './sources.ts';
import { streamDocs } from './stream-fixture.ts';
import { runTop } from './top.ts';

const LEAVE = '\x1b[0m\x1b[?25h\x1b[?1049l';

function terminal(badSize = false) {
  const writes: string[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const t = chunk.toString();
      writes.push(t);
      cb();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(out, { rows: 30, isTTY: false });
  Object.defineProperty(out, 'columns', {
    get: () => {
      if (badSize) throw new Error('layout bug');
      return 100;
    },
  });
  const input = new PassThrough() as unknown as NodeJS.ReadStream;
  return { out, input, writes };
}

const source: StatusSource = { describe: 'test', fetch: () => Promise.resolve(streamDocs()[4]!), close: () => {} };

describe('emuv top terminal handling', () => {
  it('takes the alternate screen, draws, and on q gives the terminal back', async () => {
    const t = terminal();
    const run = runTop({ source, once: false, sort: 'spill', intervalMs: 60_000, out: t.out, input: t.input, color: 'never' });
    await new Promise((r) => setTimeout(r, 50));
    expect(t.writes[0]).toBe('\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J');
    expect(t.writes.at(-1)).toContain('team-a/llm-0/server');
    (t.input as unknown as PassThrough).write('q');
    await run;
    expect(t.writes.at(-1)).toBe(LEAVE);
    expect(t.input.listenerCount('data')).toBe(0);
  });

  it('gives the terminal back before an exception leaves it', async () => {
    const t = terminal(true);
    await expect(runTop({ source, once: false, sort: 'spill', intervalMs: 60_000, out: t.out, input: t.input })).rejects.toThrow(
      'layout bug',
    );
    expect(t.writes.at(-1)).toBe(LEAVE);
  });
});

import { describe, expect, it } from 'vitest';
import { colorEnabled, fit, lineText, paint, text, width } from './frame.ts';
import { layout, MIN_COLS, MIN_ROWS, tableColumns } from './layout.ts';
import { applyKey, ingest, initialState, type ViewerState } from './state.ts';
import { streamDocs } from './stream-fixture.ts';
import { frameText } from './top.ts';

const loaded = (): ViewerState => streamDocs().reduce((s, d) => ingest(s, d), initialState());
const keys = (s: ViewerState, ...ks: string[]) => ks.reduce(applyKey, s);
const screen = (s: ViewerState, cols: number, rows: number) => layout(s, { cols, rows }, 'http://127.0.0.1:9402/status').map(lineText);
const SOURCE = 'http://127.0.0.1:9402/status';

describe('emuv top layout', () => {
  it('overview at 100x30 (snapshot): GPU bars and history, node, containers, key hints', async () => {
    await expect(`${screen(loaded(), 100, 30).join('\n')}\n`).toMatchFileSnapshot('__snapshots__/live-100x30.txt');
  });

  it.each([
    [60, 12],
    [80, 24],
    [100, 30],
    [132, 43],
    [160, 50],
    [220, 60],
  ])('at %ix%i fills the screen exactly and never draws past its width', (cols, rows) => {
    for (const s of [loaded(), keys(loaded(), 'tab', 'enter'), keys(loaded(), '?'), keys(loaded(), '/', 'x')]) {
      const lines = layout(s, { cols, rows }, SOURCE);
      expect(lines).toHaveLength(rows);
      expect(Math.max(...lines.map(width))).toBeLessThanOrEqual(cols);
      expect(lineText(lines[0]!)).toContain('emuv top');
    }
  });

  it('drops columns right to left as the terminal narrows, VRAM and SPILL last', () => {
    const heads = (cols: number) => tableColumns(cols).columns.map((c) => c.head);
    expect(heads(120)).toEqual(['LIMIT', 'VRAM', 'SPILL', 'PEAK-V', 'PEAK-S', 'SPILLS', 'OOM', 'PROC']);
    expect(heads(90)).toEqual(['LIMIT', 'VRAM', 'SPILL', 'PEAK-V', 'PEAK-S', 'SPILLS', 'OOM', 'PROC']);
    expect(heads(80)).toEqual(['LIMIT', 'VRAM', 'SPILL', 'SPILLS', 'OOM', 'PROC']);
    expect(heads(60)).toEqual(['VRAM', 'SPILL', 'SPILLS']);
    expect(heads(30)).toEqual(['VRAM', 'SPILL']);
    expect(tableColumns(80).nameWidth).toBe(34);
    expect(tableColumns(200).nameWidth).toBe(48);
  });

  it('graphs the history when there is room: side by side from 140 columns, none when short of rows', () => {
    const tall = screen(loaded(), 100, 40);
    expect(tall.filter((l) => l.includes('│') && /^ {2}(VRAM|spill) /.test(l))).toHaveLength(4);
    const wide = screen(loaded(), 160, 40);
    expect(wide.some((l) => /^ {2}VRAM .*│.* spill .*│/.test(l))).toBe(true);
    const short = screen(loaded(), 100, 16);
    expect(short.some((l) => l.includes('│█') || /│[ ▁-█]+$/.test(l))).toBe(false);
    expect(short[1]).toMatch(/^GPU 0000:17:00\.0 NVIDIA L4 healthy {2}VRAM 7\.5G \/ 7\.5G/);
  });

  it('marks the sort column and its direction in the header', () => {
    const header = (s: ViewerState) => screen(s, 100, 30).find((l) => l.includes('NAMESPACE/POD/CONTAINER'))!;
    expect(header(loaded())).toContain('SPILL▼');
    expect(header(keys(loaded(), 's'))).toContain('VRAM▼');
    expect(header(keys(loaded(), 's', 'S'))).toContain('VRAM▲');
    expect(header(keys(loaded(), 's', 's', 's'))).toContain('NAMESPACE/POD/CONTAINER▼');
  });

  it('highlights the selected row and scrolls to keep it on screen', () => {
    const s = keys(loaded(), 'N', 'N');
    const lines = layout(s, { cols: 80, rows: 14 }, SOURCE);
    const sel = lines.map(lineText).findIndex((l) => l.startsWith('> '));
    expect(lineText(lines[sel]!)).toContain('team-b/notebook-7f9c/jupyter');
    expect(lines[sel]!.every((g) => g.s === 'selected')).toBe(true);
    expect(width(lines[sel]!)).toBe(80);
  });

  it('filter prompt and the rows it leaves; a filter matching nothing says so', () => {
    const typing = screen(keys(loaded(), '/', 'z', 'e'), 100, 30);
    expect(typing.at(-1)).toMatch(/^\/ze_ {3}Enter keep {2}Esc clear/);
    expect(typing.filter((l) => /^ {2}[a-z-]+\/[a-z0-9-]+\//.test(l)).map((l) => l.trim().split(' ')[0])).toEqual(['zeta/batch-x/eval']);
    expect(screen(keys(loaded(), '/', 'n', 'o', 'p', 'e'), 100, 30).join('\n')).toContain('(no container matches "nope")');
  });

  it('detail view: the container, its history, and what is known of its processes', () => {
    const s = keys(loaded(), 's', 'tab', 'enter'); // by VRAM: ml/trainer-2/worker first
    const lines = screen(s, 100, 30);
    expect(lines[1]).toMatch(/^ml\/trainer-2\/worker {2}alloc gpu-0000-65-00-0-s00/);
    expect(lines.join('\n')).toContain('2 running, 1 exited still holding 1.5G');
    const procs = new Map([
      [
        'gpu-0000-65-00-0-s00',
        [
          { pid: 7, hostPid: 41022, state: 'live' as const, vramBytes: 14 * 2 ** 30, hostBytes: 6 * 2 ** 30 },
          { pid: 9, hostPid: 0, state: 'gone' as const, vramBytes: 2 ** 30, hostBytes: 2 ** 29 },
        ],
      ],
    ]);
    const withProcs = screen({ ...s, processes: procs }, 100, 30);
    const head = withProcs.findIndex((l) => l.includes('HOST-PID'));
    expect(withProcs.slice(head, head + 3)).toEqual([
      '       PID  HOST-PID STATE       VRAM   SPILL',
      '         7     41022 running    14.0G    6.0G',
      '         9         - exited      1.0G    0.5G',
    ]);
  });

  it('too small: one line that says so, cut to the width', () => {
    expect(screen(loaded(), MIN_COLS - 1, 30)).toEqual(['emuv top needs 60x12; this terminal is 59x30']);
    expect(screen(loaded(), 20, 5)).toEqual(['emuv top needs 60x12']);
    expect(screen(loaded(), 100, MIN_ROWS - 1)).toHaveLength(1);
  });

  it('before the first document, and after a failed fetch', () => {
    expect(screen(initialState(), 80, 20).join('\n')).toContain('waiting for the first document');
    const failed = screen({ ...loaded(), error: 'connect ECONNREFUSED 127.0.0.1:9402' }, 100, 30);
    expect(failed.at(-1)).toBe('fetch failed: connect ECONNREFUSED 127.0.0.1:9402 (showing 2026-11-27T16:00:04.000Z)');
    expect(screen({ ...loaded(), paused: true }, 100, 30)[0]).toContain('│ PAUSED │');
  });
});

describe('emuv top colours', () => {
  it('auto: on a terminal unless NO_COLOR is set to anything non-empty; always and never as asked', () => {
    expect(colorEnabled('auto', {}, true)).toBe(true);
    expect(colorEnabled('auto', { NO_COLOR: '1' }, true)).toBe(false);
    expect(colorEnabled('auto', { NO_COLOR: '' }, true)).toBe(true);
    expect(colorEnabled('auto', {}, false)).toBe(false);
    expect(colorEnabled('always', { NO_COLOR: '1' }, false)).toBe(true);
    expect(colorEnabled('never', {}, true)).toBe(false);
  });

  it('paints styles as SGR escapes only when colouring; cuts by visible width', () => {
    const l = [text('VRAM '), text('7.5G', 'bad')];
    expect(paint(l, true)).toBe('VRAM \x1b[1;31m7.5G\x1b[0m');
    expect(paint(l, false)).toBe('VRAM 7.5G');
    expect(lineText(fit(l, 7))).toBe('VRAM 7.');
    const frame = layout(loaded(), { cols: 100, rows: 30 }, SOURCE);
    expect(frameText(frame, 100, false)).not.toContain('\x1b[0m');
    expect(frameText(frame, 100, false)).not.toMatch(/\x1b\[[0-9;]*m/);
    expect(frameText(frame, 100, true)).toMatch(/\x1b\[1;7m emuv top/);
  });

  it('a frame: home, lines joined by CR LF, each shorter line erased to its end, the rest of the screen cleared', () => {
    const t = frameText([[text('ab')], [text('x'.repeat(4))]], 4, false);
    expect(t).toBe('\x1b[Hab\x1b[K\r\nxxxx\x1b[J');
  });
});

/**
 * The live `emuv top` screen (pure): viewer state and terminal size in, at most `rows` lines of at most
 * `cols` columns out. Overview: a title, per GPU its VRAM and spill bars and their history, the node's
 * capacity, and the container table (columns dropped right to left as the terminal narrows, scrolled to
 * keep the selection in sight). Detail view (Enter): one container's numbers, history and processes.
 * Below either, the key hints, the filter being typed, or the last fetch error. Under MIN_COLS x MIN_ROWS
 * only a message saying so.
 */
import type { ContainerUsage } from '../usage/collector.ts';
import type { StatusDocument } from '../usage/status.ts';
import { fit, levelStyle, padTo, plain, text, type Line, type Seg, type Style } from './frame.ts';
import { areaChart, last } from './graph.ts';
import { formatGiB, type SortKey } from './render.ts';
import { containerName, selectedContainer, visibleContainers, type Series, type ViewerState } from './state.ts';

export const MIN_COLS = 60;
export const MIN_ROWS = 12;
/** Graph rows per chart at most. */
const MAX_GRAPH_ROWS = 6;
/** From this width a GPU's two charts sit side by side. */
const SIDE_BY_SIDE_COLS = 140;

export interface Size {
  cols: number;
  rows: number;
}

export const HELP_LINES = [
  'q / Ctrl-C quit   p pause/resume   ? this help   / filter by namespace/pod/container (Enter keep, Esc clear)',
  's next sort column   S reverse order   Tab n / Shift-Tab N (or arrows) select a container row',
  'Enter detail and process view of the selected container   Esc back (again: clear the selection)',
  '[ ] previous / next node (with --agents-namespace: every node of the cluster)',
];
const HINT = 'q quit  s/S sort  / filter  Tab/n/N select  Enter details  p pause  ? help';

function meter(value: number, max: number, cols: number, style: Style): Seg[] {
  const n = Math.max(1, cols);
  const frac = max > 0 ? Math.min(1, Math.max(0, value / max)) : 0;
  const full = Math.round(frac * n);
  return [text('['), text('█'.repeat(full), value > max && max > 0 ? 'bad' : style), text('░'.repeat(n - full), 'dim'), text(']')];
}

/** A labelled chart of one series: `rows` lines, the label and scale in the first 14 columns. */
function chart(label: string, samples: readonly number[], max: number, cols: number, rows: number, style: Style): Line[] {
  const top = max > 0 ? max : Math.max(1, ...samples);
  const body = areaChart(samples, top, Math.max(1, cols - 14), rows);
  return body.map((b, i) => {
    const name = i === 0 ? label : '';
    const scale = i === 0 ? formatGiB(top) : i === rows - 1 ? '0' : '';
    return [text(`  ${name.padEnd(6)}${scale.padStart(5)}`, 'dim'), text('│', 'dim'), text(b, style)];
  });
}

function charts(series: Series | undefined, vramMax: number, spillMax: number, cols: number, rows: number): Line[] {
  if (rows <= 0 || !series) return [];
  if (cols >= SIDE_BY_SIDE_COLS) {
    const half = Math.floor(cols / 2);
    const v = chart('VRAM', last(series.vram, half), vramMax, half - 1, rows, 'vram');
    const s = chart('spill', last(series.spill, cols - half), spillMax, cols - half, rows, 'spill');
    return v.map((l, i) => [...padTo(l, half), ...s[i]!]);
  }
  return [
    ...chart('VRAM', last(series.vram, cols), vramMax, cols, rows, 'vram'),
    ...chart('spill', last(series.spill, cols), spillMax, cols, rows, 'spill'),
  ];
}

function title(s: ViewerState, source: string, cols: number): Line {
  const doc = s.doc;
  const parts = [
    'emuv top',
    `node ${doc?.node ?? '(unknown)'}`,
    ...(s.paused ? ['PAUSED'] : []),
    ...(s.filter || s.editing ? [`filter "${s.filter}"`] : []),
    `sort ${s.sort}${s.reverse ? '▲' : '▼'}`,
    doc?.time ?? 'waiting for the first document',
    source,
  ];
  return padTo([text(` ${parts.join(' │ ')}`, 'title')], cols, 'title');
}

function footer(s: ViewerState): Line {
  if (s.editing) return [text('/', 'key'), text(s.filter), text('_', 'key'), text('   Enter keep  Esc clear', 'dim')];
  if (s.error) return [text(`fetch failed: ${s.error}${s.doc ? ` (showing ${s.doc.time})` : ''}`, 'error')];
  return [text(HINT, 'dim')];
}

/** GPU header lines (3 each), or 1 each when `compact`. */
function gpuLines(doc: StatusDocument, cols: number, compact: boolean): Line[][] {
  return doc.gpus.map((g) => {
    const health: Seg = g.healthy ? text('healthy', 'ok') : text(`UNHEALTHY (${g.reason})`, 'bad');
    const vramFrac = g.usableVramBytes > 0 ? g.vramUsedBytes / g.usableVramBytes : 0;
    const vramText = `${formatGiB(g.vramUsedBytes)} / ${formatGiB(g.usableVramBytes)}`;
    const spillText = `${formatGiB(g.hostUsedBytes)} in host RAM`;
    const head: Line = [text(`GPU ${g.address} `, 'bold'), text(`${g.name ?? 'NVIDIA GPU'} `), health];
    if (compact) return [[...head, text(`  VRAM ${vramText}`, levelStyle(vramFrac)), text(`  spill ${spillText}`, 'spill')]];
    const barCols = Math.max(10, cols - 34);
    return [
      head,
      [text('  VRAM  '), ...meter(g.vramUsedBytes, g.usableVramBytes, barCols, levelStyle(vramFrac)), text(` ${vramText}`)],
      [text('  spill '), ...meter(g.hostUsedBytes, doc.capacity.hostBudgetBytes, barCols, 'spill'), text(` ${spillText}`)],
    ];
  });
}

function nodeLine(doc: StatusDocument): Line {
  const c = doc.capacity;
  const over = c.committedBytes > c.vramVirtualBytes && c.vramVirtualBytes > 0;
  const spillFrac = c.hostBudgetBytes > 0 ? c.hostUsedBytes / c.hostBudgetBytes : 0;
  return [
    text('node ', 'bold'),
    text(`virtual ${formatGiB(c.vramVirtualBytes)}  committed `),
    text(`${formatGiB(c.committedBytes)}`, over ? 'warn' : undefined),
    text(`  host spill `),
    text(`${formatGiB(c.hostUsedBytes)} / ${formatGiB(c.hostBudgetBytes)}`, levelStyle(spillFrac)),
    text(`  ${c.vgpu} slots`),
  ];
}

interface Column {
  head: string;
  width: number;
  sort?: SortKey;
  /** Dropped first when the terminal is narrow: higher goes first. */
  drop: number;
  cell: (c: ContainerUsage) => Seg;
}

const COLUMNS: Column[] = [
  { head: 'LIMIT', width: 7, sort: 'limit', drop: 3, cell: (c) => text(formatGiB(c.limitBytes)) },
  {
    head: 'VRAM',
    width: 7,
    sort: 'vram',
    drop: 0,
    cell: (c) => text(formatGiB(c.vramUsedBytes), c.vramShareBytes > 0 ? levelStyle(c.vramUsedBytes / c.vramShareBytes) : undefined),
  },
  {
    head: 'SPILL',
    width: 7,
    sort: 'spill',
    drop: 0,
    cell: (c) => text(formatGiB(c.hostUsedBytes), c.hostUsedBytes > 0 ? 'spill' : undefined),
  },
  { head: 'PEAK-V', width: 7, drop: 6, cell: (c) => text(formatGiB(c.vramPeakBytes)) },
  { head: 'PEAK-S', width: 7, drop: 7, cell: (c) => text(formatGiB(c.hostPeakBytes)) },
  { head: 'SPILLS', width: 7, sort: 'events', drop: 2, cell: (c) => text(String(c.spillEvents)) },
  { head: 'OOM', width: 5, drop: 5, cell: (c) => text(String(c.oomEvents), c.oomEvents > 0 ? 'bad' : undefined) },
  { head: 'PROC', width: 5, drop: 4, cell: (c) => text(String(c.processes)) },
];
const GUTTER = 2;
const MIN_NAME = 28;

/** The columns that fit `cols` beside a name column of at least MIN_NAME, and the name column's width. */
export function tableColumns(cols: number): { columns: Column[]; nameWidth: number } {
  let columns = [...COLUMNS];
  const need = (cs: Column[]) => GUTTER + MIN_NAME + cs.reduce((a, c) => a + 1 + c.width, 0);
  while (need(columns) > cols) {
    const worst = columns.reduce((a, c) => (c.drop > a.drop ? c : a));
    if (worst.drop === 0) break;
    columns = columns.filter((c) => c !== worst);
  }
  const nameWidth = Math.max(MIN_NAME, Math.min(48, cols - need(columns) + MIN_NAME));
  return { columns, nameWidth };
}

const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}~` : s.padEnd(n));

function tableHeader(s: ViewerState, columns: Column[], nameWidth: number): Line {
  const mark = s.reverse ? '▲' : '▼';
  const name = `NAMESPACE/POD/CONTAINER${s.sort === 'name' ? mark : ''}`;
  const cells = columns.map((c) => ` ${`${c.head}${c.sort === s.sort ? mark : ''}`.padStart(c.width)}`);
  return [text(`${' '.repeat(GUTTER)}${cut(name, nameWidth)}${cells.join('')}`, 'bold')];
}

/** Table lines, and the index of the selected container's line (-1 when none is shown). */
function tableRows(s: ViewerState, columns: Column[], nameWidth: number, cols: number): { lines: Line[]; selectedAt: number } {
  const lines: Line[] = [];
  let selectedAt = -1;
  const cs = visibleContainers(s);
  if ((s.doc?.containers.length ?? 0) === 0) lines.push(plain('  (no emuv container has started a CUDA process on this node)'));
  else if (cs.length === 0) lines.push(plain(`  (no container matches "${s.filter}")`));
  for (const c of cs) {
    const sel = c.allocId === s.selected;
    if (sel) selectedAt = lines.length;
    const name = text(`${sel ? '> ' : '  '}${cut(containerName(c), nameWidth)}`, sel ? 'selected' : undefined);
    if (c.error) {
      lines.push([name, text(` stats unreadable: ${c.error}`, 'error')]);
      continue;
    }
    const row: Line = [name];
    for (const col of columns) {
      const cell = col.cell(c);
      row.push(text(' '), { ...cell, t: cell.t.padStart(col.width) });
    }
    lines.push(
      sel
        ? padTo(
            row.map((g) => ({ t: g.t, s: 'selected' as const })),
            cols,
            'selected',
          )
        : row,
    );
    if (c.exitedProcesses > 0)
      lines.push([
        text(
          `    ${c.exitedProcesses} exited process${c.exitedProcesses === 1 ? '' : 'es'} still counted (${formatGiB(c.exitedHeldBytes)})`,
          'dim',
        ),
      ]);
  }
  return { lines, selectedAt };
}

/** `rows` lines of the table, scrolled so that the selected line is in them; the last says how many more. */
function window(lines: Line[], selectedAt: number, rows: number): Line[] {
  if (rows <= 0) return [];
  if (lines.length <= rows) return lines;
  const start = selectedAt >= rows - 1 ? selectedAt - rows + 2 : 0;
  const shown = lines.slice(start, start + rows - 1);
  const more = lines.length - start - shown.length;
  return [...shown, more > 0 ? [text(`  … ${more} more line${more === 1 ? '' : 's'} (Tab to scroll, / to filter)`, 'dim')] : []];
}

function overview(s: ViewerState, doc: StatusDocument, size: Size): Line[] {
  const { cols, rows } = size;
  const { columns, nameWidth } = tableColumns(cols);
  const table = tableRows(s, columns, nameWidth, cols);
  const help = s.help ? HELP_LINES.map((l) => [text(l, 'dim')]) : [];
  // title, node line, blank, table header, footer
  const fixed = 5 + help.length;
  const tableNeed = Math.max(3, Math.min(table.lines.length, 8));
  const gpus = doc.gpus.length;
  const series = gpus > 0 ? doc.gpus.map((g) => s.history[`gpu:${g.address}`]) : [s.history.node];
  const blocks = series.length;
  const perChart = cols >= SIDE_BY_SIDE_COLS ? 1 : 2;
  const full = fixed + gpus * 3 + (gpus === 0 ? 1 : 0) + tableNeed;
  const compact = full > rows;
  const spare = rows - (compact ? fixed + gpus + (gpus === 0 ? 1 : 0) + tableNeed : full);
  const graphRows = compact ? 0 : Math.min(MAX_GRAPH_ROWS, Math.max(0, Math.floor(spare / (blocks * perChart))));

  const top: Line[] = [title(s, '', cols)];
  const heads = gpuLines(doc, cols, compact);
  if (gpus === 0)
    top.push([text('node ', 'bold'), text('VRAM and spill of its containers (no GPU inventory from a stats directory)', 'dim')]);
  for (let i = 0; i < blocks; i++) {
    if (gpus > 0) top.push(...heads[i]!);
    const g = doc.gpus[i];
    const vramMax = g ? g.usableVramBytes : 0;
    top.push(...charts(series[i], vramMax, doc.capacity.hostBudgetBytes, cols, graphRows));
  }
  top.push(nodeLine(doc), []);
  top.push(tableHeader(s, columns, nameWidth));
  const tableRowsLeft = rows - top.length - 1 - help.length;
  return [...top, ...window(table.lines, table.selectedAt, tableRowsLeft), ...help];
}

function detail(s: ViewerState, c: ContainerUsage, size: Size): Line[] {
  const { cols, rows } = size;
  const lines: Line[] = [];
  lines.push([text(containerName(c), 'bold'), text(`  alloc ${c.allocId}  GPU ${c.gpu ?? '(unknown)'}`, 'dim')]);
  if (c.error) lines.push([text(`  stats unreadable: ${c.error}`, 'error')]);
  const vramFrac = c.vramShareBytes > 0 ? c.vramUsedBytes / c.vramShareBytes : 0;
  lines.push([
    text(`  limit ${formatGiB(c.limitBytes)}  VRAM share ${formatGiB(c.vramShareBytes)}  VRAM `),
    text(`${formatGiB(c.vramUsedBytes)}`, levelStyle(vramFrac)),
    text(` (peak ${formatGiB(c.vramPeakBytes)})  spill `),
    text(`${formatGiB(c.hostUsedBytes)}`, 'spill'),
    text(` (peak ${formatGiB(c.hostPeakBytes)})`),
  ]);
  lines.push([
    text(`  spill events ${c.spillEvents}  OOM `),
    text(String(c.oomEvents), c.oomEvents > 0 ? 'bad' : undefined),
    text(`  denied retries ${c.deniedRetries}`),
  ]);
  const procs = s.processes?.get(c.allocId) ?? null;
  const procLines: Line[] = [[text('PROCESSES', 'bold')]];
  if (procs) {
    procLines.push([
      text(`  ${'PID'.padStart(8)} ${'HOST-PID'.padStart(9)} ${'STATE'.padEnd(8)} ${'VRAM'.padStart(7)} ${'SPILL'.padStart(7)}`, 'bold'),
    ]);
    if (procs.length === 0) procLines.push(plain('  (no process slot in use)'));
    for (const p of [...procs].sort((a, b) => b.vramBytes + b.hostBytes - (a.vramBytes + a.hostBytes) || a.pid - b.pid)) {
      const state = p.state === 'live' ? 'running' : p.state === 'gone' ? 'exited' : 'unknown';
      procLines.push([
        text(`  ${String(p.pid).padStart(8)} ${(p.hostPid ? String(p.hostPid) : '-').padStart(9)} `),
        text(state.padEnd(8), p.state === 'gone' ? 'warn' : p.state === 'live' ? 'ok' : 'dim'),
        text(` ${formatGiB(p.vramBytes).padStart(7)} ${formatGiB(p.hostBytes).padStart(7)}`),
      ]);
    }
  } else {
    procLines.push(
      plain(
        `  ${c.processes} running${c.processesUnverified ? ` (${c.processesUnverified} unverified)` : ''}, ${c.exitedProcesses} exited still holding ${formatGiB(c.exitedHeldBytes)}`,
      ),
      [text('  per-process PIDs and bytes: run emuv top --state-dir on the node (not in emuv.io/status/v1)', 'dim')],
    );
  }
  const foot = 2 + (s.help ? HELP_LINES.length : 0);
  const spare = rows - 1 - lines.length - procLines.length - foot - 1;
  const perChart = cols >= SIDE_BY_SIDE_COLS ? 1 : 2;
  const graphRows = Math.min(MAX_GRAPH_ROWS, Math.max(0, Math.floor(spare / perChart)));
  // Spill has no per-container budget: its chart scales to its own highest sample.
  lines.push(...charts(s.history[`c:${c.allocId}`], c.vramShareBytes, 0, cols, graphRows), []);
  return [title(s, '', cols), ...lines, ...procLines, [], [text('Esc back to the overview', 'dim')]];
}

/** The whole screen: at most `rows` lines, none wider than `cols`. */
export function layout(s: ViewerState, size: Size, source = ''): Line[] {
  const { cols, rows } = size;
  if (cols < MIN_COLS || rows < MIN_ROWS)
    return [fit(plain(`emuv top needs ${MIN_COLS}x${MIN_ROWS}; this terminal is ${cols}x${rows}`), cols)].slice(0, Math.max(0, rows));
  let body: Line[];
  if (!s.doc)
    body = [
      title(s, source, cols),
      [],
      s.error ? [text(`fetch failed: ${s.error}; retrying`, 'error')] : plain('waiting for the first document…'),
    ];
  else {
    const c = s.focus ? selectedContainer(s) : null;
    body = c ? detail(s, c, size) : overview(s, s.doc, size);
    body[0] = title(s, source, cols);
  }
  const foot = footer(s);
  const lines = body.slice(0, rows - 1);
  while (lines.length < rows - 1) lines.push([]);
  return [...lines, foot].map((l) => fit(l, cols));
}

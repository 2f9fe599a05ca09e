/**
 * What the live `emuv top` knows and how keys change it (pure): the last status document, the history
 * of every GPU, of the node and of every container, and what the user chose (sort, filter, selection,
 * detail view, pause, help). The terminal loop (top.ts) feeds it documents and keys; layout.ts draws it.
 */
import type { ContainerUsage } from '../usage/collector.ts';
import type { StatusDocument } from '../usage/status.ts';
import { push, ring, type Ring } from './graph.ts';
import { SORT_KEYS, sortContainers, type SortKey } from './render.ts';

/** One CUDA process of a container, from its stats-file slot (only a `--state-dir` source has them). */
export interface ProcessRow {
  /** pid in the container's pid namespace */
  pid: number;
  /** pid on the host as the interposer saw it (0 when it could not tell) */
  hostPid: number;
  /** running, exited without releasing its slot (still counted), or not known */
  state: 'live' | 'gone' | 'unknown';
  vramBytes: number;
  hostBytes: number;
}
/** Processes by allocation ID; null when the source cannot see process slots (an agent's /status). */
export type ProcessTable = ReadonlyMap<string, readonly ProcessRow[]>;

export interface Series {
  vram: Ring;
  spill: Ring;
}

export interface ViewerState {
  doc: StatusDocument | null;
  processes: ProcessTable | null;
  /** The last fetch's error (the last good document stays shown). */
  error: string | null;
  /** By `gpu:<address>`, `node`, `c:<allocId>`; only for what the last document has. */
  history: Readonly<Record<string, Series>>;
  historySize: number;
  sort: SortKey;
  reverse: boolean;
  filter: string;
  /** Typing into the filter (after `/`). */
  editing: boolean;
  /** Allocation ID of the selected container row. */
  selected: string | null;
  /** The selected container's detail and process view instead of the overview. */
  focus: boolean;
  paused: boolean;
  help: boolean;
  quit: boolean;
  /** Nodes to move by, asked with `[`/`]` and not yet done (top.ts asks a source that has several: `pick`). */
  nodeStep: number;
}

export function initialState(o: { sort?: SortKey; historySize?: number } = {}): ViewerState {
  return {
    doc: null,
    processes: null,
    error: null,
    history: {},
    historySize: o.historySize ?? 600,
    sort: o.sort ?? 'spill',
    reverse: false,
    filter: '',
    editing: false,
    selected: null,
    focus: false,
    paused: false,
    help: false,
    quit: false,
    nodeStep: 0,
  };
}

/** Another node is shown: what was seen of the last one goes (its GPUs, containers, histories, selection). */
export function nodeSwitched(s: ViewerState): ViewerState {
  return { ...s, doc: null, processes: null, error: null, history: {}, selected: null, focus: false, nodeStep: 0 };
}

export function containerName(c: ContainerUsage): string {
  return c.owner ? `${c.owner.namespace}/${c.owner.pod}/${c.owner.container}` : `(${c.allocId})`;
}

/** Containers whose namespace/pod/container (or allocation ID) contain the filter text, any case. */
export function filterContainers(cs: readonly ContainerUsage[], filter: string): ContainerUsage[] {
  const f = filter.trim().toLowerCase();
  if (!f) return [...cs];
  return cs.filter((c) => containerName(c).toLowerCase().includes(f) || c.allocId.toLowerCase().includes(f));
}

/** Sorted as render.ts sorts (largest first, then by name; unreadable last); `reverse` turns the readable ones around. */
export function orderContainers(cs: readonly ContainerUsage[], key: SortKey, reverse: boolean): ContainerUsage[] {
  const sorted = sortContainers(cs, key);
  if (!reverse) return sorted;
  const ok = sorted.filter((c) => c.error === null);
  return [...ok.reverse(), ...sorted.filter((c) => c.error !== null)];
}

/** The container rows on screen, in order. */
export function visibleContainers(s: ViewerState): ContainerUsage[] {
  return orderContainers(filterContainers(s.doc?.containers ?? [], s.filter), s.sort, s.reverse);
}

export function selectedContainer(s: ViewerState): ContainerUsage | null {
  return s.doc?.containers.find((c) => c.allocId === s.selected) ?? null;
}

function sample(h: Readonly<Record<string, Series>>, key: string, size: number, vram: number, spill: number): Series {
  const prev = h[key] ?? { vram: ring(size), spill: ring(size) };
  return { vram: push(prev.vram, vram), spill: push(prev.spill, spill) };
}

/** A new document: one more sample in every history; histories of what is gone are dropped. */
export function ingest(s: ViewerState, doc: StatusDocument, processes: ProcessTable | null = null): ViewerState {
  const h: Record<string, Series> = {};
  for (const g of doc.gpus) h[`gpu:${g.address}`] = sample(s.history, `gpu:${g.address}`, s.historySize, g.vramUsedBytes, g.hostUsedBytes);
  const nodeVram = doc.containers.reduce((a, c) => a + c.vramUsedBytes, 0);
  h.node = sample(s.history, 'node', s.historySize, nodeVram, doc.capacity.hostUsedBytes);
  for (const c of doc.containers)
    h[`c:${c.allocId}`] = sample(s.history, `c:${c.allocId}`, s.historySize, c.vramUsedBytes, c.hostUsedBytes);
  const stillThere = doc.containers.some((c) => c.allocId === s.selected);
  return {
    ...s,
    doc,
    processes,
    error: null,
    history: h,
    selected: stillThere ? s.selected : null,
    focus: stillThere && s.focus,
  };
}

export function fetchFailed(s: ViewerState, message: string): ViewerState {
  return { ...s, error: message };
}

/** Keys as top.ts decodes them from the terminal; anything else is its one character. */
export type Key = 'up' | 'down' | 'tab' | 'backtab' | 'enter' | 'esc' | 'backspace' | 'ctrl-c' | 'ctrl-u' | 'unknown' | (string & {});

/** Splits what one read from a raw-mode terminal gave into keys (several may come at once, pasted or typed fast). */
export function parseKeys(data: string): Key[] {
  const keys: Key[] = [];
  for (let i = 0; i < data.length;) {
    const ch = data[i]!;
    if (ch === '\x1b') {
      const seq = /^\x1b(?:\[[0-9;]*[A-Za-z~]|O[A-Za-z])/.exec(data.slice(i));
      if (seq) {
        const last = seq[0].at(-1);
        keys.push(last === 'A' ? 'up' : last === 'B' ? 'down' : last === 'Z' ? 'backtab' : 'unknown');
        i += seq[0].length;
      } else {
        keys.push('esc');
        i += 1;
      }
      continue;
    }
    i += 1;
    if (ch === '\r' || ch === '\n') keys.push('enter');
    else if (ch === '\t') keys.push('tab');
    else if (ch === '\x7f' || ch === '\b') keys.push('backspace');
    else if (ch === '\x03') keys.push('ctrl-c');
    else if (ch === '\x15') keys.push('ctrl-u');
    else if (ch >= ' ') keys.push(ch);
    else keys.push('unknown');
  }
  return keys;
}

function moveSelection(s: ViewerState, step: 1 | -1): ViewerState {
  const rows = visibleContainers(s);
  if (rows.length === 0) return { ...s, selected: null, focus: false };
  const at = rows.findIndex((c) => c.allocId === s.selected);
  const next = at < 0 ? (step === 1 ? 0 : rows.length - 1) : (at + step + rows.length) % rows.length;
  return { ...s, selected: rows[next]!.allocId };
}

/** What one key does. */
export function applyKey(s: ViewerState, key: Key): ViewerState {
  if (key === 'ctrl-c') return { ...s, quit: true };
  if (s.editing) {
    if (key === 'enter') return { ...s, editing: false };
    if (key === 'esc') return { ...s, editing: false, filter: '' };
    if (key === 'backspace') return { ...s, filter: s.filter.slice(0, -1) };
    if (key === 'ctrl-u') return { ...s, filter: '' };
    if (key.length === 1) return { ...s, filter: s.filter + key };
    return s;
  }
  switch (key) {
    case 'q':
      return { ...s, quit: true };
    case 's':
      return { ...s, sort: SORT_KEYS[(SORT_KEYS.indexOf(s.sort) + 1) % SORT_KEYS.length]!, reverse: false };
    case 'S':
      return { ...s, reverse: !s.reverse };
    case '/':
      return { ...s, editing: true, focus: false };
    case 'tab':
    case 'n':
    case 'down':
    case 'j':
      return moveSelection(s, 1);
    case 'backtab':
    case 'N':
    case 'up':
    case 'k':
      return moveSelection(s, -1);
    case 'enter':
      return s.selected ? { ...s, focus: true } : moveSelection(s, 1);
    case 'esc':
      if (s.focus) return { ...s, focus: false };
      if (s.selected) return { ...s, selected: null };
      return { ...s, filter: '' };
    case ']':
      return { ...s, nodeStep: s.nodeStep + 1 };
    case '[':
      return { ...s, nodeStep: s.nodeStep - 1 };
    case 'p':
      return { ...s, paused: !s.paused };
    case '?':
    case 'h':
      return { ...s, help: !s.help };
    default:
      return s;
  }
}

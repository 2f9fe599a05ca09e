import { describe, expect, it } from 'vitest';
import {
  applyKey,
  filterContainers,
  ingest,
  initialState,
  nodeSwitched,
  orderContainers,
  parseKeys,
  visibleContainers,
  type ViewerState,
} from './state.ts';
import { streamDocs } from './stream-fixture.ts';

const loaded = (): ViewerState => streamDocs().reduce((s, d) => ingest(s, d), initialState());
const keys = (s: ViewerState, ...ks: string[]) => ks.reduce(applyKey, s);
const names = (s: ViewerState) => visibleContainers(s).map((c) => c.owner?.pod ?? c.allocId);

describe('emuv top state', () => {
  it('keeps a history per GPU, for the node and per container, one sample per document', () => {
    const s = loaded();
    expect(s.history['gpu:0000:17:00.0']!.vram.values).toHaveLength(5);
    expect(s.history['gpu:0000:17:00.0']!.spill.values.map((v) => v / 2 ** 30)).toEqual([0, 2, 6, 10, 12.5]);
    expect(s.history.node!.spill.values).toHaveLength(5);
    expect(s.history['c:gpu-0000-65-00-0-s00']!.vram.values.map((v) => v / 2 ** 30)).toEqual([10, 12, 14, 15.5, 15.5]);
  });

  it('bounds the history, and drops the history of a container that is gone', () => {
    const docs = streamDocs();
    let s = initialState({ historySize: 3 });
    for (const d of docs) s = ingest(s, d);
    expect(s.history.node!.vram.values).toHaveLength(3);
    s = ingest(s, { ...docs[0]!, containers: docs[0]!.containers.slice(1) });
    expect(s.history['c:gpu-0000-17-00-0-s00']).toBeUndefined();
  });

  it('s cycles the sort column, S reverses it; unreadable stats stay last', () => {
    let s = loaded();
    expect(names(s)).toEqual(['llm-0', 'trainer-2', 'batch-x', 'notebook-7f9c', 'gpu-0000-65-00-0-s02']);
    s = keys(s, 's');
    expect(s.sort).toBe('vram');
    expect(names(s)).toEqual(['trainer-2', 'llm-0', 'batch-x', 'notebook-7f9c', 'gpu-0000-65-00-0-s02']);
    s = keys(s, 'S');
    expect(names(s)).toEqual(['notebook-7f9c', 'batch-x', 'llm-0', 'trainer-2', 'gpu-0000-65-00-0-s02']);
    s = keys(s, 's', 's');
    expect([s.sort, s.reverse]).toEqual(['name', false]);
    expect(names(s).slice(0, 4)).toEqual(['trainer-2', 'llm-0', 'notebook-7f9c', 'batch-x']);
    expect(orderContainers(s.doc!.containers, 'name', true).map((c) => c.owner?.namespace ?? null)).toEqual([
      'zeta',
      'team-b',
      'team-a',
      'ml',
      null,
    ]);
  });

  it('/ filters by namespace, pod or container as it is typed; Enter keeps it, Esc clears it', () => {
    let s = keys(loaded(), '/', 't', 'e', 'a', 'm');
    expect(s.editing).toBe(true);
    expect(names(s)).toEqual(['llm-0', 'notebook-7f9c']);
    s = keys(s, '-', 'B', 'enter');
    expect([s.editing, s.filter]).toEqual([false, 'team-B']);
    expect(names(s)).toEqual(['notebook-7f9c']);
    // keys typed into the filter are text, not commands
    expect(keys(loaded(), '/', 'q', 's').quit).toBe(false);
    expect(keys(s, '/', 'esc').filter).toBe('');
    expect(keys(s, '/', 'backspace', 'backspace').filter).toBe('team');
    expect(filterContainers(s.doc!.containers, 'WORKER').map((c) => c.owner?.pod)).toEqual(['trainer-2']);
    expect(filterContainers(s.doc!.containers, '65-00-0-s02')).toHaveLength(1);
  });

  it('Tab/n/N select rows in screen order, Enter focuses, Esc goes back then clears the selection', () => {
    let s = keys(loaded(), 'tab');
    expect(s.selected).toBe('gpu-0000-17-00-0-s00');
    s = keys(s, 'n', 'down');
    expect(s.selected).toBe('gpu-0000-65-00-0-s01');
    s = keys(s, 'N');
    expect(s.selected).toBe('gpu-0000-65-00-0-s00');
    expect(keys(loaded(), 'N').selected).toBe('gpu-0000-65-00-0-s02');
    expect(keys(loaded(), 'backtab', 'tab').selected).toBe('gpu-0000-17-00-0-s00');
    s = keys(s, 'enter');
    expect(s.focus).toBe(true);
    s = keys(s, 'esc');
    expect([s.focus, s.selected]).toEqual([false, 'gpu-0000-65-00-0-s00']);
    expect(keys(s, 'esc').selected).toBeNull();
  });

  it('a focused container that goes away returns to the overview', () => {
    const docs = streamDocs();
    const s = keys(loaded(), 'tab', 'enter');
    const next = ingest(s, { ...docs[4]!, containers: docs[4]!.containers.slice(1) });
    expect([next.focus, next.selected]).toEqual([false, null]);
  });

  it('p pauses, ? toggles help, q and Ctrl-C quit (Ctrl-C even while typing a filter)', () => {
    expect(keys(loaded(), 'p').paused).toBe(true);
    expect(keys(loaded(), 'p', 'p').paused).toBe(false);
    expect(keys(loaded(), '?').help).toBe(true);
    expect(keys(loaded(), 'q').quit).toBe(true);
    expect(keys(loaded(), '/', 'ctrl-c').quit).toBe(true);
  });

  it('decodes raw terminal input into keys', () => {
    expect(parseKeys('qs\t\r\x1b[A\x1b[B\x1b[Z\x1b\x7f\x03/x')).toEqual([
      'q',
      's',
      'tab',
      'enter',
      'up',
      'down',
      'backtab',
      'esc',
      'backspace',
      'ctrl-c',
      '/',
      'x',
    ]);
    expect(parseKeys('\x1b[15~\x01')).toEqual(['unknown', 'unknown']);
  });

  it('[ and ] ask for another node (not while typing a filter); a switch forgets the last node', () => {
    const s = keys(loaded(), 'tab', 'enter');
    expect(keys(s, ']', ']', '[').nodeStep).toBe(1);
    expect(keys(s, '/', ']').nodeStep).toBe(0);
    expect(keys(s, '/', ']').filter).toBe(']');
    const after = nodeSwitched(keys(s, ']'));
    expect([after.doc, after.history, after.selected, after.focus, after.nodeStep]).toEqual([null, {}, null, false, 0]);
    expect(after.sort).toBe(s.sort);
  });
});

/**
 * JSON Patch (RFC 6902) and JSON Pointer (RFC 6901): the one place emuv builds patches. The agent patches
 * its Node (status capacity, labels), the operator its EmuvNodes and policy status, the webhook the pods it
 * admits; all of them produce their operations with the two functions here, so a pointer is escaped one way.
 */
import { isDeepStrictEqual } from 'node:util';

export type JsonPatchOp = { op: 'add' | 'replace' | 'test'; path: string; value: unknown } | { op: 'remove'; path: string };

/** One reference token of a JSON Pointer: `~` -> `~0`, `/` -> `~1` (in that order, RFC 6901 §3). */
export const escapePointer = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');

/** A JSON Pointer from unescaped tokens: pointer('metadata', 'labels', 'emuv.io/gpu.count'). */
export const pointer = (...tokens: (string | number)[]): string => tokens.map((t) => `/${escapePointer(String(t))}`).join('');

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The patch that turns `before` into `after`, deep: objects key by key, arrays of equal length index by
 * index, anything else that differs replaced whole. A key whose value is undefined counts as absent
 * (as JSON.stringify drops it). For documents the caller owns entirely (a pod the webhook mutates).
 */
export function diff(before: unknown, after: unknown, path = ''): JsonPatchOp[] {
  if (isDeepStrictEqual(before, after)) return [];
  if (isObject(before) && isObject(after)) {
    const ops: JsonPatchOp[] = [];
    for (const k of Object.keys(before)) {
      if ((!(k in after) || after[k] === undefined) && before[k] !== undefined)
        ops.push({ op: 'remove', path: `${path}/${escapePointer(k)}` });
    }
    for (const k of Object.keys(after)) {
      if (after[k] === undefined) continue;
      const p = `${path}/${escapePointer(k)}`;
      if (!(k in before) || before[k] === undefined) ops.push({ op: 'add', path: p, value: after[k] });
      else ops.push(...diff(before[k], after[k], p));
    }
    return ops;
  }
  if (Array.isArray(before) && Array.isArray(after) && before.length === after.length) {
    return before.flatMap((b, i) => diff(b, after[i], `${path}/${i}`));
  }
  return [{ op: 'replace', path, value: after }];
}

/**
 * The patch that makes the object at `path` hold `fields`, shallow, touching nothing else: for an object
 * others also write (a Node's labels and capacity, which the kubelet owns too). Each differing field is
 * one `add` (on an existing member RFC 6902 `add` replaces it, and unlike `replace` it cannot fail when a
 * concurrent writer removed the member). An absent object is added whole. `remove` lists the keys this
 * writer owns that must go when they are not in `fields` (every other key is left alone); `'others'`
 * removes every key not in `fields` (for an object this writer owns entirely, such as EmuvNode.spec).
 */
export function setFields(
  current: Record<string, unknown> | undefined,
  fields: Record<string, unknown>,
  path: string,
  opts: { remove?: readonly string[] | 'others' } = {},
): JsonPatchOp[] {
  if (!isObject(current)) return [{ op: 'add', path, value: fields }];
  const ops: JsonPatchOp[] = [];
  const owned = opts.remove === 'others' ? Object.keys(current) : (opts.remove ?? []);
  for (const k of [...owned].sort()) if (k in current && !(k in fields)) ops.push({ op: 'remove', path: `${path}/${escapePointer(k)}` });
  for (const k of Object.keys(fields).sort())
    if (!(k in current) || !isDeepStrictEqual(current[k], fields[k]))
      ops.push({ op: 'add', path: `${path}/${escapePointer(k)}`, value: fields[k] });
  return ops;
}

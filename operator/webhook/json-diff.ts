/**
 * JSON Patch (RFC 6902) from two JSON documents: objects are compared key by key, arrays of equal length
 * index by index, anything else that differs is replaced whole. Keys are escaped (`/` -> `~1`).
 */
import { isDeepStrictEqual } from 'node:util';
import type { JsonPatchOp } from '../kube/api.ts';

export const escapePointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function diff(before: unknown, after: unknown, path = ''): JsonPatchOp[] {
  if (isDeepStrictEqual(before, after)) return [];
  if (isObject(before) && isObject(after)) {
    const ops: JsonPatchOp[] = [];
    for (const k of Object.keys(before)) {
      if (!(k in after) || after[k] === undefined) {
        if (before[k] !== undefined) ops.push({ op: 'remove', path: `${path}/${escapePointer(k)}` });
      }
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
  return [{ op: 'replace', path: path, value: after }];
}

/**
 * What the apiserver does with a JSON Patch (RFC 6902), for the stand-ins: add/replace/remove/test on
 * object members and array indexes, all or nothing, 422 for a path that is not there or a failed test.
 * Test code: emuv itself only produces patches (common/kube/json-patch.ts).
 */
import type { JsonPatchOp } from '../../common/kube/json-patch.ts';

/** An error shaped like client-node's ApiException (a numeric HTTP status in `code`). */
export class HttpError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/** Applies a JSON Patch to a copy of `doc` (add/replace/remove/test on object paths and array indexes). */
export function applyJsonPatch<T>(doc: T, ops: readonly JsonPatchOp[]): T {
  type Node = Record<string, unknown> | unknown[];
  const root: Record<string, unknown> = { doc: structuredClone(doc) };
  for (const op of ops) {
    const parts = [
      'doc',
      ...op.path
        .split('/')
        .slice(1)
        .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')),
    ];
    let parent: Node = root;
    for (const p of parts.slice(0, -1)) {
      const next: unknown = Array.isArray(parent) ? parent[Number(p)] : parent[p];
      if (typeof next !== 'object' || next === null) throw new HttpError(422, `path ${op.path} does not exist`);
      parent = next as Node;
    }
    const last = parts[parts.length - 1]!;
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (op.op === 'test') {
        if (JSON.stringify(parent[i]) !== JSON.stringify(op.value)) throw new HttpError(422, `test failed at ${op.path}`);
      } else if (op.op === 'remove' || op.op === 'replace') {
        if (!(i < parent.length)) throw new HttpError(422, `cannot ${op.op} missing ${op.path}`);
        if (op.op === 'remove') parent.splice(i, 1);
        else parent[i] = structuredClone(op.value);
      } else {
        parent.splice(i, 0, structuredClone(op.value));
      }
      continue;
    }
    if (op.op === 'test') {
      if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) throw new HttpError(422, `test failed at ${op.path}`);
    } else if (op.op === 'remove' || op.op === 'replace') {
      if (!(last in parent)) throw new HttpError(422, `cannot ${op.op} missing ${op.path}`);
      if (op.op === 'remove') delete parent[last];
      else parent[last] = structuredClone(op.value);
    } else {
      parent[last] = structuredClone(op.value);
    }
  }
  return root.doc as T;
}

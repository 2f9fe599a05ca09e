import { describe, expect, it } from 'vitest';
import { applyJsonPatch } from '../../test/fakes/json-patch.ts';
import { diff, escapePointer, pointer, setFields } from './json-patch.ts';

describe('JSON Pointer', () => {
  it('escapes ~ before / (RFC 6901 §3), so "~1" in a key stays literal', () => {
    expect(escapePointer('emuv.io/vram-virtual')).toBe('emuv.io~1vram-virtual');
    expect(escapePointer('a~1b')).toBe('a~01b');
    expect(pointer('metadata', 'labels', 'emuv.io/gpu.count')).toBe('/metadata/labels/emuv.io~1gpu.count');
    expect(pointer('spec', 'containers', 0)).toBe('/spec/containers/0');
  });
});

describe('diff', () => {
  it('adds missing parents whole, escapes keys, replaces arrays that change length', () => {
    expect(diff({ a: { 'x/y': 1 }, l: [1] }, { a: { 'x/y': 2 }, b: { c: 1 }, l: [1, 2] })).toEqual([
      { op: 'replace', path: '/a/x~1y', value: 2 },
      { op: 'add', path: '/b', value: { c: 1 } },
      { op: 'replace', path: '/l', value: [1, 2] },
    ]);
    expect(diff({ a: 1, b: 2 }, { a: 1 })).toEqual([{ op: 'remove', path: '/b' }]);
    expect(diff({ a: 1, b: 2 }, { a: 1, b: undefined })).toEqual([{ op: 'remove', path: '/b' }]);
  });
  it('round-trips through the apiserver stand-in', () => {
    const a = { x: [{ y: 1 }, { z: [1, 2] }], '~k': 'v' };
    const b = { x: [{ y: 2 }, { z: [1] }], '~k': 'w', n: null };
    expect(applyJsonPatch(a, diff(a, b))).toEqual(b);
  });
});

describe('setFields', () => {
  const labels = { 'kubernetes.io/hostname': 'n1', 'emuv.io/gpu.count': '1', 'emuv.io/gpu.product': 'X' };

  it('adds an absent object whole, and nothing when the fields already agree', () => {
    expect(setFields(undefined, { a: '1' }, '/status/capacity')).toEqual([{ op: 'add', path: '/status/capacity', value: { a: '1' } }]);
    expect(setFields(labels, { 'emuv.io/gpu.count': '1' }, '/metadata/labels')).toEqual([]);
  });

  it('touches only the named fields and removes only the owned keys it no longer sets', () => {
    const ops = setFields(labels, { 'emuv.io/gpu.count': '2' }, '/metadata/labels', { remove: ['emuv.io/gpu.product', 'emuv.io/absent'] });
    expect(ops).toEqual([
      { op: 'remove', path: '/metadata/labels/emuv.io~1gpu.product' },
      { op: 'add', path: '/metadata/labels/emuv.io~1gpu.count', value: '2' },
    ]);
    // The other writer's label survives.
    expect(applyJsonPatch({ metadata: { labels } }, ops).metadata.labels).toEqual({
      'kubernetes.io/hostname': 'n1',
      'emuv.io/gpu.count': '2',
    });
  });

  it("with remove: 'others', makes an object it owns equal to the fields, comparing values deeply", () => {
    const spec = { slotsPerGpu: 4, policy: 'p', conflictingPolicies: ['q'] };
    const want = { slotsPerGpu: 4, policy: 'p2', extra: { a: [1] } };
    const ops = setFields(spec, want, '/spec', { remove: 'others' });
    expect(ops.map((o) => `${o.op} ${o.path}`)).toEqual(['remove /spec/conflictingPolicies', 'add /spec/extra', 'add /spec/policy']);
    expect(applyJsonPatch({ spec }, ops).spec).toEqual(want);
    expect(setFields({ l: [1, { b: 2 }] }, { l: [1, { b: 2 }] }, '/spec', { remove: 'others' })).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { areaChart, last, push, ring } from './graph.ts';

describe('emuv top history', () => {
  it('a ring keeps the newest samples, oldest first', () => {
    let r = ring(3);
    for (const v of [1, 2, 3, 4, 5]) r = push(r, v);
    expect(r.values).toEqual([3, 4, 5]);
    expect(last(r, 2)).toEqual([4, 5]);
    expect(last(r, 10)).toEqual([3, 4, 5]);
    expect(last(r, 0)).toEqual([]);
  });

  it('pushing leaves the old ring as it was (the state is a value)', () => {
    const a = push(ring(2), 1);
    const b = push(a, 2);
    expect(a.values).toEqual([1]);
    expect(b.values).toEqual([1, 2]);
  });

  it('draws an area chart to an eighth of a cell, newest on the right, blank where no sample was taken', () => {
    expect(areaChart([0, 1, 2, 4], 4, 6, 2)).toEqual(['     █', '   ▄██']);
    expect(areaChart([0, 1, 2, 4], 4, 6, 2).every((l) => l.length === 6)).toBe(true);
  });

  it('clamps above the maximum, shows a little use as an eighth, and keeps only what fits', () => {
    expect(areaChart([100, 0.001], 10, 2, 1)).toEqual(['█▁']);
    expect(areaChart([1, 2, 3, 4, 5], 5, 3, 1)).toEqual(['▅▆█']);
    expect(areaChart([5], 0, 1, 1)).toEqual(['█']);
    expect(areaChart([1], 1, 0, 3)).toEqual([]);
  });
});

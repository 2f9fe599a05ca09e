/**
 * History for `emuv top` (pure): a fixed-size ring of samples per series, and an area chart of it in
 * block characters, one column per sample, the newest on the right.
 */

export interface Ring {
  readonly capacity: number;
  /** Oldest first; at most `capacity`. */
  readonly values: readonly number[];
}

export const ring = (capacity: number): Ring => ({ capacity: Math.max(1, Math.floor(capacity)), values: [] });

/** The ring with `v` added, the oldest sample dropped when it is full. */
export function push(r: Ring, v: number): Ring {
  const values = r.values.length >= r.capacity ? [...r.values.slice(r.values.length - r.capacity + 1), v] : [...r.values, v];
  return { capacity: r.capacity, values };
}

/** The last `n` samples (fewer when fewer were taken). */
export const last = (r: Ring, n: number): readonly number[] => (n <= 0 ? [] : r.values.slice(Math.max(0, r.values.length - n)));

/** Eighths of a cell, from empty to full. */
export const BLOCKS = ' ▁▂▃▄▅▆▇█';

/**
 * `rows` lines of `cols` characters: each sample a column filled from the bottom in proportion to
 * value / max (clamped to full), to an eighth of a cell. A sample above zero shows at least an eighth, so
 * a little use is never drawn as none. Columns without a sample (a short history) are blank, on the left.
 */
export function areaChart(samples: readonly number[], max: number, cols: number, rows: number): string[] {
  if (cols <= 0 || rows <= 0) return [];
  const shown = samples.slice(Math.max(0, samples.length - cols));
  const eighths = shown.map((v) => {
    if (!(v > 0)) return 0;
    const frac = max > 0 ? Math.min(1, v / max) : 1;
    return Math.max(1, Math.round(frac * rows * 8));
  });
  const blank = cols - shown.length;
  const lines: string[] = [];
  for (let r = rows - 1; r >= 0; r--) {
    let line = ' '.repeat(blank);
    for (const e of eighths) line += BLOCKS[Math.min(8, Math.max(0, e - r * 8))];
    lines.push(line);
  }
  return lines;
}

/**
 * Screen lines with styles, apart from how they are written (pure). A line is a list of segments of
 * plain text, each with an optional style; its width is its text's length (emuv top draws only
 * single-column characters). `fit` cuts a line to the terminal width, `paint` writes it with ANSI SGR
 * escapes or without them.
 */

export type Style = 'title' | 'dim' | 'bold' | 'ok' | 'warn' | 'bad' | 'vram' | 'spill' | 'selected' | 'key' | 'error';
export interface Seg {
  t: string;
  s?: Style;
}
export type Line = Seg[];

export const ColorModes = ['auto', 'always', 'never'] as const;
export type ColorMode = (typeof ColorModes)[number];

/**
 * Whether to colour: `never`/`always` as asked; `auto` colours a terminal unless NO_COLOR is set to
 * any non-empty value (no-color.org). NO_COLOR also wins over `auto` only: `--color=always` is an
 * explicit request.
 */
export function colorEnabled(mode: ColorMode, env: Readonly<Record<string, string | undefined>>, isTTY: boolean): boolean {
  if (mode === 'never') return false;
  if (mode === 'always') return true;
  return isTTY && !env.NO_COLOR;
}

const SGR: Record<Style, string> = {
  title: '1;7',
  dim: '2',
  bold: '1',
  ok: '32',
  warn: '33',
  bad: '1;31',
  vram: '36',
  spill: '35',
  selected: '7',
  key: '1;36',
  error: '1;31',
};

export const text = (t: string, s?: Style): Seg => (s ? { t, s } : { t });
export const plain = (t: string): Line => [{ t }];
export const width = (l: Line): number => l.reduce((a, g) => a + g.t.length, 0);
export const lineText = (l: Line): string => l.map((g) => g.t).join('');

/** The line cut to `cols` columns (segments past it dropped, the one across it shortened). */
export function fit(l: Line, cols: number): Line {
  const out: Line = [];
  let left = Math.max(0, cols);
  for (const g of l) {
    if (left <= 0) break;
    const t = g.t.length > left ? g.t.slice(0, left) : g.t;
    out.push(g.s ? { t, s: g.s } : { t });
    left -= t.length;
  }
  return out;
}

/** The line padded with spaces to `cols` in the style of its last segment (a highlighted row is a band). */
export function padTo(l: Line, cols: number, s?: Style): Line {
  const w = width(l);
  return w >= cols ? l : [...l, s ? { t: ' '.repeat(cols - w), s } : { t: ' '.repeat(cols - w) }];
}

/** One line as the terminal gets it: escapes only when `color`, always reset at the end of a segment. */
export function paint(l: Line, color: boolean): string {
  if (!color) return lineText(l);
  return l.map((g) => (g.s && g.t ? `\x1b[${SGR[g.s]}m${g.t}\x1b[0m` : g.t)).join('');
}

/** A fraction's style: fine, getting full, full. */
export function levelStyle(frac: number): Style {
  return frac >= 0.9 ? 'bad' : frac >= 0.7 ? 'warn' : 'ok';
}

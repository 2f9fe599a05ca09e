/**
 * Exact Kubernetes resource.Quantity arithmetic (the webhook's limits, the agent's DRA capacities): `28Gi`, `30064771072`, `28G`, `1.5Gi`,
 * `3e9`, `500m`. Values are rationals of bigints, so nothing is rounded by accident.
 */
const RE = /^([+-])?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$/;

const BINARY: Record<string, bigint> = { Ki: 1n << 10n, Mi: 1n << 20n, Gi: 1n << 30n, Ti: 1n << 40n, Pi: 1n << 50n, Ei: 1n << 60n };
const DECIMAL: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

export interface Rational {
  num: bigint;
  den: bigint;
}

export class QuantityError extends Error {
  override name = 'QuantityError';
}

/** Parses a quantity into an exact rational; throws QuantityError with a readable reason. */
export function parseQuantity(text: unknown): Rational {
  if (typeof text === 'number' && Number.isSafeInteger(text)) return { num: BigInt(text), den: 1n };
  if (typeof text !== 'string') throw new QuantityError(`${JSON.stringify(text)} is not a quantity`);
  if (text.length > 64) throw new QuantityError(`quantity is longer than 64 characters`);
  const m = RE.exec(text);
  if (!m) throw new QuantityError(`"${text}" is not a quantity (expected e.g. 28Gi or 30064771072)`);
  const [, sign, digits, suffix = ''] = m;
  const [whole = '', frac = ''] = digits!.split('.');
  let num = BigInt((whole || '0') + frac);
  let den = 10n ** BigInt(frac.length);
  if (sign === '-') num = -num;
  if (suffix in BINARY) {
    num *= BINARY[suffix]!;
  } else {
    const exp = suffix.startsWith('e') || suffix.startsWith('E') ? (suffix.length > 1 ? Number(suffix.slice(1)) : 18) : DECIMAL[suffix]!;
    if (Math.abs(exp) > 30) throw new QuantityError(`"${text}" is out of range`);
    if (exp >= 0) num *= 10n ** BigInt(exp);
    else den *= 10n ** BigInt(-exp);
  }
  return reduce({ num, den });
}

function gcd(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  while (b) [a, b] = [b, a % b];
  return a;
}

function reduce(r: Rational): Rational {
  const g = gcd(r.num, r.den) || 1n;
  return { num: r.num / g, den: r.den / g };
}

/** Whole bytes, or a QuantityError when the value has a fraction. */
export function wholeBytes(q: Rational, what: string): bigint {
  if (q.den !== 1n) throw new QuantityError(`${what} must be a whole number of bytes`);
  return q.num;
}

/** Bytes rounded up (memory requests may be fractional, e.g. `100m`). */
export function ceilBytes(q: Rational): bigint {
  const d = q.num / q.den;
  return q.num % q.den > 0n ? d + 1n : d;
}

/** Formats bytes with the largest binary suffix that keeps the value exact (28Gi, 1536Mi, 1000). */
export function formatBytes(bytes: bigint): string {
  for (const [suffix, mult] of [
    ['Ti', 1n << 40n],
    ['Gi', 1n << 30n],
    ['Mi', 1n << 20n],
    ['Ki', 1n << 10n],
  ] as const) {
    if (bytes !== 0n && bytes % mult === 0n) return `${bytes / mult}${suffix}`;
  }
  return bytes.toString();
}

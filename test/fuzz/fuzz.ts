/**
 * Shared settings of the fuzz tests (fast-check): a fixed seed and a bounded number of runs per target, so
 * that the normal test run is quick and repeatable. `EMUV_FUZZ_RUNS=100000 EMUV_FUZZ_SEED=<n>` runs a
 * longer or different campaign by hand. Every input that broke a parser goes into test/fuzz/corpus/<target>.json
 * (with what it broke) and is replayed by the same property on every run.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';

const SEED = Number(process.env.EMUV_FUZZ_SEED ?? 20261203);
const RUNS = process.env.EMUV_FUZZ_RUNS ? Number(process.env.EMUV_FUZZ_RUNS) : null;

/** fc.assert with the shared seed; `numRuns` is the target's default, overridden by EMUV_FUZZ_RUNS. */
export function fuzz<T>(property: fc.IProperty<T>, numRuns: number): void {
  fc.assert(property, { seed: SEED, numRuns: RUNS ?? numRuns });
}

export interface CorpusEntry<T> {
  input: T;
  /** What the input did before the fix, and which fix stopped it. */
  was: string;
}

/** The crashers found for a target, replayed as regression cases. */
export function corpus<T>(name: string): CorpusEntry<T>[] {
  return JSON.parse(readFileSync(join(import.meta.dirname, 'corpus', `${name}.json`), 'utf8')) as CorpusEntry<T>[];
}

/** Latency summaries and the machine record shared by the benchmarks. */
import { cpus, loadavg, totalmem } from 'node:os';

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** n, p50, p99, max and mean of millisecond samples, rounded to the microsecond. */
export function summarize(samples: readonly number[]) {
  const s = [...samples].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return {
    n: s.length,
    p50Ms: r(percentile(s, 50)),
    p99Ms: r(percentile(s, 99)),
    maxMs: r(s.at(-1)!),
    meanMs: r(s.reduce((a, b) => a + b, 0) / s.length),
  };
}

/** The machine a result was measured on, as every results file records it. */
export function machine() {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadAverage1m: loadavg()[0],
  };
}

/**
 * Stats-file read cost for the agent (target, docs/benchmarks.md: <= 50 us per container): readStatsFile() on the
 * golden stats file v1 (2 live processes) and on a file with all 240 slots live, measured in one run.
 * Writes bench/results/native-stats-read.json. Usage: node bench/native-stats-read.ts
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { readStatsFile, STATS_V1 } from '../plugin/stats/stats-reader.ts';

const ROOT = join(import.meta.dirname, '..');
const golden = join(ROOT, 'test', 'fixtures', 'stats', 'golden-v1.bin');

// A full container: every slot live (a copy of the golden's first slot with distinct pids).
const full = Buffer.from(readFileSync(golden));
const slot0 = full.subarray(STATS_V1.hdrSize, STATS_V1.hdrSize + STATS_V1.slotSize);
for (let i = 0; i < STATS_V1.maxSlots; i++) {
  const off = STATS_V1.hdrSize + i * STATS_V1.slotSize;
  slot0.copy(full, off);
  full.writeUInt32LE(1000 + i, off + 4);
}
const fullDir = mkdtempSync(join(tmpdir(), 'emuv-bench-stats-'));
const fullPath = join(fullDir, 'stats.bin');
writeFileSync(fullPath, full);

function measure(path: string, iterations: number): { medianUs: number; meanUs: number; p99Us: number } {
  for (let i = 0; i < 500; i++) readStatsFile(path); // warm-up (JIT, page cache)
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint();
    const s = readStatsFile(path);
    const t1 = process.hrtime.bigint();
    if (!s.consistent) throw new Error('inconsistent read of a quiet file');
    samples.push(Number(t1 - t0) / 1000);
  }
  samples.sort((a, b) => a - b);
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  return {
    medianUs: +samples[Math.floor(samples.length / 2)]!.toFixed(2),
    meanUs: +mean.toFixed(2),
    p99Us: +samples[Math.floor(samples.length * 0.99)]!.toFixed(2),
  };
}

const results = {
  benchmark: 'readStatsFile(): one 64 KiB copy + a validating copy up to the last live slot (readSync), parse, per container',
  load_average_1m: loadavg()[0],
  date: new Date().toISOString(),
  machine: `${process.platform} ${process.arch}, ${cpus().length} CPUs, node ${process.version}`,
  target_us: 50,
  golden_2_processes: measure(golden, 5000),
  full_240_processes: measure(fullPath, 2000),
};
rmSync(fullDir, { recursive: true, force: true });
// Judged on the median: the build machines are shared, and the mean carries other processes' bursts.
const ok = results.golden_2_processes.medianUs <= 50 && results.full_240_processes.medianUs <= 50;
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'native-stats-read.json'), JSON.stringify({ ...results, within_target: ok }, null, 2) + '\n');
console.log(JSON.stringify({ ...results, within_target: ok }, null, 2));

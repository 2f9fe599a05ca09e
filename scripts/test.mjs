// `npm test`: every test layer, in order, then one summary line.
//   1. native/: builds the interposer and the simulated driver, runs the C tests (`make -C native test`)
//   2. realsw: NVIDIA's cudart 12/13, PyTorch, CuPy, cuda-bindings, nvidia-ml-py through the interposer on
//      the simulated driver (test/realsw/run.sh; its Python environment is cached by requirements hash)
//   3. vitest: the unit/process-boundary project and the cluster project (vitest.config.ts)
// Prints "emuv: N passed, M failed, K skipped" last, after a "not run:" line for each file that ran no test
// (a load error, a failed set-up); exits non-zero if anything failed or did not run.
// Extra arguments go to vitest (e.g. `npm test -- --project unit`).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
let passed = 0;
let failed = 0;
let skipped = 0;

// A layer prints "<layer>: N passed, M failed[, K skipped]" last; a layer that dies before that counts as
// one failure.
function layer(name, cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], cwd: root });
  process.stdout.write(r.stdout ?? '');
  const m = new RegExp(`^${name}: (\\d+) passed, (\\d+) failed(?:, (\\d+) skipped)?$`, 'm').exec(r.stdout ?? '');
  if (m) {
    passed += Number(m[1]);
    failed += Number(m[2]);
    skipped += Number(m[3] ?? 0);
  }
  if (r.status !== 0 && (!m || Number(m[2]) === 0)) failed += 1;
}
layer('native', 'make', ['-C', join(root, 'native'), 'test']);
layer('realsw', 'bash', [join(root, 'test', 'realsw', 'run.sh')]);

const out = mkdtempSync(join(tmpdir(), 'emuv-vitest-'));
const report = join(out, 'report.json');
const vitest = spawnSync(
  join(root, 'node_modules', '.bin', 'vitest'),
  ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)],
  { stdio: 'inherit', cwd: root },
);
const notRun = [];
if (existsSync(report)) {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  // A file that failed to load or whose set-up failed ran no test: each counts as one failure, named.
  for (const f of r.testResults ?? []) {
    if (f.status === 'failed' && (f.assertionResults ?? []).length === 0) {
      failed += 1;
      notRun.push(`${relative(root, f.name)}: ${String(f.message ?? 'failed before any test ran').split('\n')[0]}`);
    }
  }
} else {
  failed += 1;
  notRun.push('vitest wrote no report: nothing of the unit and cluster projects is known to have run');
}
if (vitest.status !== 0 && failed === 0) {
  failed += 1;
  notRun.push(`vitest exited ${vitest.status} with no failed test (a global set-up or the runner itself failed; see above)`);
}
rmSync(out, { recursive: true, force: true });

for (const line of notRun) console.log(`not run: ${line}`);
console.log(`emuv: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exitCode = failed > 0 ? 1 : 0;

// `npm test`: every test layer, in order, then one summary line.
//   1. native/: builds the interposer and the simulated driver, runs the C tests (`make -C native test`)
//   2. realsw: NVIDIA's cudart 12/13, PyTorch, CuPy, cuda-bindings, nvidia-ml-py through the interposer on
//      the simulated driver (test/realsw/run.sh; its Python environment is cached by requirements hash)
//   3. vitest: the unit/process-boundary project and the cluster project (vitest.config.ts)
// Prints "emuv: N passed, M failed, K skipped, T todo, R not run" last, after a "not run:" line for each
// layer or file that stopped before its tests ran. "Not run" counts the tests vitest collected (`vitest
// list`, which loads the files without their global set-up) that have no result after the run: a failed
// global set-up shows as every cluster test not run, not as one failure. Exits non-zero if anything failed
// or did not run; skipped and todo tests are counted and shown, never hidden.
// Extra arguments go to vitest (e.g. `npm test -- --project unit`).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const total = { passed: 0, failed: 0, skipped: 0, todo: 0, notRun: 0 };
const notRunLines = [];

// A layer prints "<layer>: N passed, M failed[, K skipped]" last. A layer that dies before that line ran
// nothing we can count: it is named in a "not run:" line and counts as one failure (its set-up failed).
function layer(name, cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], cwd: root });
  process.stdout.write(r.stdout ?? '');
  const m = new RegExp(`^${name}: (\\d+) passed, (\\d+) failed(?:, (\\d+) skipped)?$`, 'm').exec(r.stdout ?? '');
  if (m) {
    total.passed += Number(m[1]);
    total.failed += Number(m[2]);
    total.skipped += Number(m[3] ?? 0);
  } else {
    notRunLines.push(`${name}: the layer stopped (exit ${r.status ?? r.signal}) before it reported its tests; see above`);
  }
  if (r.status !== 0 && (!m || Number(m[2]) === 0)) total.failed += 1;
}
layer('native', 'make', ['-C', join(root, 'native'), 'test']);
layer('realsw', 'bash', [join(root, 'test', 'realsw', 'run.sh')]);

const out = mkdtempSync(join(tmpdir(), 'emuv-vitest-'));
const vitestBin = join(root, 'node_modules', '.bin', 'vitest');
const args = process.argv.slice(2);

// What should run: tests by file, as collected (it.each counts once here, so a not-run count is a floor).
const listed = join(out, 'list.json');
spawnSync(vitestBin, ['list', `--json=${listed}`, ...args], { stdio: ['ignore', 'ignore', 'inherit'], cwd: root });
const expected = new Map();
if (existsSync(listed)) {
  for (const t of JSON.parse(readFileSync(listed, 'utf8'))) expected.set(t.file, (expected.get(t.file) ?? 0) + 1);
} else {
  notRunLines.push('vitest list wrote nothing: the tests that should run are unknown (see above)');
  total.failed += 1;
}

const report = join(out, 'report.json');
const vitest = spawnSync(vitestBin, ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...args], {
  stdio: 'inherit',
  cwd: root,
});
const ran = new Map();
if (existsSync(report)) {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  total.passed += r.numPassedTests;
  total.failed += r.numFailedTests;
  total.skipped += r.numPendingTests ?? 0;
  total.todo += r.numTodoTests ?? 0;
  for (const f of r.testResults ?? []) ran.set(f.name, f);
}
for (const [file, count] of expected) {
  const f = ran.get(file);
  if (f && (f.assertionResults ?? []).length > 0) continue;
  total.notRun += count;
  const why = f?.message ? String(f.message).split('\n')[0] : 'vitest stopped before this file (a global set-up failed? see above)';
  notRunLines.push(`${relative(root, file)} (${count} tests): ${why}`);
}
if (vitest.status !== 0 && total.failed === 0 && total.notRun === 0) {
  total.failed += 1;
  notRunLines.push(`vitest exited ${vitest.status} with every test accounted for (the runner itself failed; see above)`);
}
rmSync(out, { recursive: true, force: true });

for (const line of notRunLines) console.log(`not run: ${line}`);
const { passed, failed, skipped, todo, notRun } = total;
console.log(`emuv: ${passed} passed, ${failed} failed, ${skipped} skipped, ${todo} todo, ${notRun} not run`);
process.exitCode = failed > 0 || notRun > 0 ? 1 : 0;

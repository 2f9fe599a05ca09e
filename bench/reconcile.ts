/**
 * Reconcile benchmark (target, docs/benchmarks.md: 1,000 nodes x 20 policies converge in <= 10 s). Runs the real
 * composition root (operator/main.ts, controller only, no leader election) as a child process against
 * the in-process fake apiserver (test/fakes/operator-apiserver.ts: list/watch, JSON Patch), so the
 * real client-node informers and HTTP calls are measured, without etcd or admission. Convergence: every
 * EmuvNode exists with its policy's slotsPerGpu and every policy status counts its 50 nodes.
 * Runs twice: with the V8 flags the chart gives the operator (helm/emuv/values.yaml operator.nodeArgs) and
 * with Node's defaults, for convergence time and peak RSS of each. Also measures what loading
 * @kubernetes/client-node alone costs (RSS of a Node process that imports it, against one that does not).
 * Writes bench/results/reconcile.json. Usage: npm exec -- node bench/reconcile.ts
 * [BENCH_NODES=1000 BENCH_POLICIES=20 BENCH_WORKERS=8]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { OperatorApiServer } from '../test/fakes/operator-apiserver.ts';

const NODES = Number(process.env.BENCH_NODES ?? 1000);
const POLICIES = Number(process.env.BENCH_POLICIES ?? 20);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 8);
const EMUVNODES = '/apis/emuv.io/v1alpha1/emuvnodes';
const POLICY_PATH = '/apis/emuv.io/v1alpha1/emuvpolicies';

const root = new URL('..', import.meta.url).pathname;
const chartNodeArgs = (parse(readFileSync(join(root, 'helm/emuv/values.yaml'), 'utf8')) as { operator: { nodeArgs: string[] } }).operator
  .nodeArgs;

async function converge(nodeArgs: readonly string[]) {
  const api = new OperatorApiServer();
  await api.start();
  for (let i = 0; i < NODES; i++) {
    api.put('/api/v1/nodes', {
      metadata: { name: `n${String(i).padStart(5, '0')}`, labels: { 'emuv.io/gpu.count': '1', pool: `pool-${i % POLICIES}` } },
    });
  }
  for (let i = 0; i < POLICIES; i++) {
    api.put(POLICY_PATH, {
      apiVersion: 'emuv.io/v1alpha1',
      kind: 'EmuvPolicy',
      metadata: { name: `p${i}` },
      spec: { priority: 10 + i, nodeSelector: { matchLabels: { pool: `pool-${i}` } }, slotsPerGpu: 1 + i },
    });
  }
  const dir = mkdtempSync(join(tmpdir(), 'emuv-bench-'));
  const kubeconfig = join(dir, 'kubeconfig');
  api.writeKubeconfig(kubeconfig);

  const perPolicy = NODES / POLICIES;
  const converged = () => {
    let good = 0;
    for (const e of api.list(EMUVNODES) as Array<{ metadata: { name: string }; spec: { slotsPerGpu: number } }>) {
      if (e.spec.slotsPerGpu === 1 + (Number(e.metadata.name.slice(1)) % POLICIES)) good++;
    }
    const policiesOk = (api.list(POLICY_PATH) as Array<{ status?: { matchedNodes?: number; appliedNodes?: number } }>).filter(
      (p) => p.status?.matchedNodes === perPolicy && p.status?.appliedNodes === perPolicy,
    ).length;
    return { good, policiesOk };
  };

  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      'operator/main.ts',
      '--kubeconfig',
      kubeconfig,
      '--webhook',
      'off',
      '--leader-elect',
      'off',
      '--metrics-port',
      '0',
      '--workers',
      String(WORKERS),
      '--log-level',
      'warn',
    ],
    { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const marks: Record<string, number> = {};
  let peakRssMiB = 0;
  for (;;) {
    const { good, policiesOk } = converged();
    for (const m of [1, NODES / 2, NODES])
      if (good >= m && marks[`nodes${m}`] === undefined) marks[`nodes${m}`] = Math.round(performance.now() - t0);
    try {
      peakRssMiB = Number(/^VmHWM:\s+([0-9]+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
    } catch {
      // the child may not exist yet or any more
    }
    if (good === NODES && policiesOk === POLICIES) break;
    if (performance.now() - t0 > 120_000) throw new Error(`no convergence in 120 s: ${good} nodes, ${policiesOk} policies`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const convergedMs = Math.round(performance.now() - t0);
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  await api.stop();
  return {
    nodeArgs: nodeArgs.join(' '),
    convergedMs,
    firstEmuvNodeMs: marks.nodes1,
    halfEmuvNodesMs: marks[`nodes${NODES / 2}`],
    apiWrites: api.requests.filter((r) => r.method !== 'GET').length,
    operatorPeakRssMiB: Math.round(peakRssMiB),
  };
}

/** RSS (MiB) of a fresh Node process after running `code`, median of three. */
function rssAfter(code: string): number {
  const runs = [0, 1, 2].map((): number =>
    Number(
      execFileSync(process.execPath, ['--input-type=module', '-e', `${code}; console.log(process.memoryUsage().rss)`], {
        cwd: root,
        encoding: 'utf8',
      }),
    ),
  );
  return Math.round((runs.sort((x, y) => x - y)[1]! / 2 ** 20) * 10) / 10;
}

const chart = await converge(chartNodeArgs);
const defaults = await converge([]);
const bare = rssAfter('');
const withClient = rssAfter("await import('@kubernetes/client-node')");
const result = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  loadAverage1m: loadavg()[0],
  nodes: NODES,
  policies: POLICIES,
  workers: WORKERS,
  target: { convergeMs: 10_000 },
  chartNodeArgs: chart,
  nodeDefaults: defaults,
  meetsTarget: chart.convergedMs <= 10_000 && defaults.convergedMs <= 10_000,
  clientNodeImportRssMiB: { bareNode: bare, afterImport: withClient, cost: Math.round((withClient - bare) * 10) / 10 },
  note: 'from process start (includes loading @kubernetes/client-node and the initial lists) to convergence; fake apiserver in this process, no etcd, no admission',
};
mkdirSync(new URL('results', import.meta.url), { recursive: true });
writeFileSync(new URL('results/reconcile.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);

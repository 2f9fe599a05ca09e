/**
 * Reconcile benchmark against the real kube-apiserver (target, docs/benchmarks.md: 1,000 nodes x 20 policies
 * converge in <= 10 s). Brings up the local cluster (localcluster/; root, binaries built by
 * localcluster/cluster/build.sh), installs the CRDs, creates 1,000 GPU Node objects (labels only, no kubelet
 * behind them) in 20 pools and 20 policies, then starts the operator (controller only, one replica)
 * and waits until every node's EmuvNode carries its pool's policy and every policy counts its 50 nodes.
 * Same run, same apiserver: the time to create the 1,000 nodes themselves, as the baseline of what
 * 1,000 writes cost here. Writes bench/results/reconcile-cluster.json.
 * Usage: npm exec -- node bench/reconcile-cluster.ts
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { Kube, KubeError, loadCluster, startCluster, stopCluster, waitFor, type Json } from '../localcluster/index.ts';

const NODES = 1000;
const POLICIES = 20;
const WORKERS = Number(process.env.BENCH_WORKERS ?? 8);
const ROOT = join(import.meta.dirname, '..');
const log = (s: string) => console.log(`[bench] ${s}`);

async function inParallel<T>(items: T[], width: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

const info = await startCluster({ log });
const kube = new Kube(info);
try {
  for (const file of ['emuv.io_emuvpolicies.yaml', 'emuv.io_emuvnodes.yaml']) {
    const crd = parse(readFileSync(join(ROOT, 'deploy/crds', file), 'utf8'));
    await kube.json('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd).catch((e: unknown) => {
      if (!(e instanceof KubeError && e.status === 409)) throw e;
    });
    await waitFor(`CRD ${crd.metadata.name}`, 60_000, async () => {
      const c = await kube.get(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
      return c.status?.conditions?.some((x: Json) => x.type === 'Established' && x.status === 'True') ? true : undefined;
    });
  }
  const names = Array.from({ length: NODES }, (_, i) => `bench-${String(i).padStart(4, '0')}`);
  const t0 = performance.now();
  await inParallel(names, 8, (name) =>
    kube.json('POST', '/api/v1/nodes', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, labels: { 'emuv.io/gpu.count': '1', 'emuv.io/bench': 'true', pool: `pool-${Number(name.slice(6)) % POLICIES}` } },
    }),
  );
  const createNodesMs = Math.round(performance.now() - t0);
  log(`${NODES} nodes created in ${createNodesMs} ms`);
  for (let i = 0; i < POLICIES; i++) {
    await kube.json('POST', '/apis/emuv.io/v1alpha1/emuvpolicies', {
      apiVersion: 'emuv.io/v1alpha1',
      kind: 'EmuvPolicy',
      metadata: { name: `bench-p${i}` },
      spec: { priority: 10 + i, nodeSelector: { matchLabels: { pool: `pool-${i}` } }, slotsPerGpu: 1 + i },
    });
  }

  const perPolicy = NODES / POLICIES;
  const start = performance.now();
  const operator = spawn(
    join(ROOT, 'node_modules/.bin/node'),
    [
      'operator/main.ts',
      `--kubeconfig=${info.kubeconfig}`,
      '--webhook=off',
      '--leader-elect=off',
      '--metrics-port=0',
      `--workers=${WORKERS}`,
      '--log-level=warn',
    ],
    { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  let peakRssMiB = 0;
  const marks: Record<string, number> = {};
  for (;;) {
    // A CRD's storage can answer 429 for a moment after it is established.
    const list = (p: string) =>
      kube.get(p).catch((e: unknown) => {
        if (e instanceof KubeError && e.status === 429) return { items: [] };
        throw e;
      });
    const nodes = (await list('/apis/emuv.io/v1alpha1/emuvnodes')).items as Json[];
    const good = nodes.filter(
      (e) => e.metadata.name.startsWith('bench-') && e.spec?.slotsPerGpu === 1 + (Number(e.metadata.name.slice(6)) % POLICIES),
    ).length;
    const policies = (await list('/apis/emuv.io/v1alpha1/emuvpolicies')).items as Json[];
    const policiesOk = policies.filter((p) => p.status?.matchedNodes === perPolicy && p.status?.appliedNodes === perPolicy).length;
    for (const m of [1, NODES / 2, NODES])
      if (good >= m && marks[`nodes${m}`] === undefined) marks[`nodes${m}`] = Math.round(performance.now() - start);
    try {
      peakRssMiB = Number(/^VmHWM:\s+([0-9]+) kB/m.exec(readFileSync(`/proc/${operator.pid}/status`, 'utf8'))![1]) / 1024;
    } catch {
      // not started yet
    }
    if (good === NODES && policiesOk === POLICIES) break;
    if (performance.now() - start > 180_000) throw new Error(`no convergence in 180 s: ${good} nodes, ${policiesOk} policies`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const convergedMs = Math.round(performance.now() - start);
  operator.kill('SIGTERM');
  await new Promise((r) => operator.on('exit', r));
  const result = {
    benchmark: 'reconcile against the real kube-apiserver',
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, node: process.version, loadAverage1m: loadavg()[0] },
    kubernetes: info.kubernetesVersion,
    nodes: NODES,
    policies: POLICIES,
    workers: WORKERS,
    target: { convergeMs: 10_000 },
    convergedMs,
    firstEmuvNodeMs: marks.nodes1,
    halfEmuvNodesMs: marks[`nodes${NODES / 2}`],
    baseline: { createNodesMs, note: `${NODES} Node creates from this process, 8 in flight, same apiserver` },
    operatorPeakRssMiB: Math.round(peakRssMiB),
    meetsTarget: convergedMs <= 10_000,
    note: 'from operator process start (loading @kubernetes/client-node, initial lists) to convergence; etcd, kube-apiserver and its admission chain are real',
  };
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/reconcile-cluster.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
} finally {
  kube.close();
  await stopCluster(loadCluster(info.paths), log);
}

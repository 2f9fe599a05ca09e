/**
 * DRA against the real kubelet, scheduler and containerd of the local cluster (localcluster/; root, binaries
 * built by localcluster/cluster/build.sh). The agent runs as a host process, as in the cluster tests
 * (test/cluster/agent.ts, the two-gpus-numa fixture with the flags of test/cluster/dra.test.ts). Measured,
 * sequentially, N=10 each (one warm-up pod per path first, not counted):
 *   - pod create -> Running for a probe pod holding a 1Gi ResourceClaim (from a ResourceClaimTemplate; DRA path:
 *     scheduler allocation, NodePrepareResources, CDI);
 *   - the same probe pod asking `emuv.io/vram-virtual: 1Gi` + `emuv.io/vgpu: 1` (device-plugin path; the agent
 *     restarted with --allocation=DevicePlugin, and node allocatable showing emuv.io/vgpu first);
 *   - baseline in the same run: the same probe pod asking for no GPU at all;
 *   - the ResourceSlice put back after what the kubelet's start-up wipe does: the node's slice deleted through
 *     the API, timed from the DELETE's answer until a slice with another UID is there (the agent watches slices);
 *   - one real kubelet restart: from starting the kubelet (after it was stopped) until the slice is back with
 *     another UID, with the wipe and node Ready seen on the way.
 * A pod counts Running when a GET sees status.phase Running; GETs are POLL_MS apart, so each time is late by at
 * most POLL_MS plus one GET. Each pod is deleted (grace 0) and gone before the next is created.
 * Merges its results into bench/results/dra.json under `cluster` (bench/dra.ts writes the rest; either may run
 * first). Stops the cluster at the end unless EMUV_KEEP_CLUSTER=1.
 * Usage: npm exec -- node bench/dra-cluster.ts
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEVICE_CLASS } from '../common/contracts/dra.ts';
import {
  Kube,
  KubeError,
  loadCluster,
  sleep,
  startCluster,
  startDaemon,
  stopCluster,
  stopDaemon,
  waitFor,
  waitNodeReady,
  type Json,
} from '../localcluster/index.ts';
import { clearNodeResource, draAgentArgs, nodeSlices, removeDraObjects, startAgent, type RunningAgent } from '../test/cluster/agent.ts';
import { claimPod, claimTemplate, deviceClass, probePod } from '../test/cluster/pods.ts';
import { machine, summarize } from './lib.ts';

const N = 10;
const POLL_MS = 25;
const NS = 'emuv-bench-dra';
const TEMPLATE = 'bench-vram-1gi';
const VRAM_VIRTUAL = 'emuv.io/vram-virtual';
const VGPU = 'emuv.io/vgpu';
const ROOT = join(import.meta.dirname, '..');
const RESULTS = join(ROOT, 'bench/results/dra.json');
const log = (s: string) => console.log(`[bench] ${s}`);
const now = () => performance.now();
const ms = (x: number) => Math.round(x);

const info = await startCluster({ log });
const kube = new Kube(info);
const slices = () => nodeSlices(kube, info.nodeName);
const agentArgs = [...draAgentArgs(info), '--log-level=info'];
const start = (allocation: 'DRA' | 'DevicePlugin', keepDir: boolean): RunningAgent =>
  startAgent(info, 'bench-dra', {
    fixture: 'two-gpus-numa',
    gpuMemory: ['0000:17:00.0=8Gi', '0000:65:00.0=16Gi'],
    devices: ['nvidia0', 'nvidia1', 'nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools'],
    args: [...agentArgs, `--allocation=${allocation}`],
    keepDir,
  });
let agent: RunningAgent | undefined;

const alive = () => {
  if (agent && agent.child.exitCode !== null) throw new Error(`the agent exited:\n${agent.logText().slice(-2000)}`);
};

/** Pod create (POST) to a GET that sees phase Running. */
async function createToRunning(pod: Json): Promise<number> {
  const name = pod.metadata.name as string;
  const t0 = now();
  await kube.createPod(NS, pod);
  await waitFor(
    `pod ${NS}/${name} Running`,
    120_000,
    async () => {
      alive();
      const p = await kube.pod(NS, name);
      if (p.status?.phase === 'Failed') throw new Error(`pod ${name} failed: ${JSON.stringify(p.status)}`);
      return p.status?.phase === 'Running' ? true : undefined;
    },
    POLL_MS,
  );
  return now() - t0;
}

async function deletePod(name: string): Promise<void> {
  await kube.json('DELETE', `/api/v1/namespaces/${NS}/pods/${name}?gracePeriodSeconds=0`).catch(() => undefined);
  await waitFor(`pod ${NS}/${name} gone`, 120_000, async () => {
    try {
      await kube.pod(NS, name);
      return undefined;
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) return true;
      throw e;
    }
  });
}

/** One warm-up pod, then N measured ones, each deleted before the next. */
async function podRuns(prefix: string, make: (name: string) => Json): Promise<number[]> {
  const warm = `${prefix}-warmup`;
  await createToRunning(make(warm));
  await deletePod(warm);
  const out: number[] = [];
  for (let i = 0; i < N; i++) {
    const name = `${prefix}-${i}`;
    out.push(await createToRunning(make(name)));
    await deletePod(name);
    log(`${name}: ${ms(out.at(-1)!)} ms`);
  }
  return out;
}

const draPod = (name: string): Json => claimPod(name, TEMPLATE);
const devicePluginPod = (name: string): Json => probePod({ name, limits: { [VRAM_VIRTUAL]: '1Gi', [VGPU]: '1' } });
const plainPod = (name: string): Json => probePod({ name });

/** The node's one slice (waits for it). */
const theSlice = (what: string, notUid?: string) =>
  waitFor(
    what,
    60_000,
    async () => {
      alive();
      const s = await slices();
      return s.length === 1 && s[0]!.metadata.uid !== notUid ? (s[0] as Json) : undefined;
    },
    POLL_MS,
  );

const runs = (xs: number[]) => ({ runs: xs.map(ms), ...summarize(xs) });

try {
  await kube.ensureNamespace(NS);
  await kube.json('DELETE', `/apis/resource.k8s.io/v1/deviceclasses/${DEVICE_CLASS}`).catch(() => undefined);
  await kube.json('POST', '/apis/resource.k8s.io/v1/deviceclasses', deviceClass());
  await kube.json('POST', `/apis/resource.k8s.io/v1/namespaces/${NS}/resourceclaimtemplates`, claimTemplate(TEMPLATE, '1Gi'));

  // DRA path.
  agent = start('DRA', false);
  log(`agent started (log: ${agent.log}); waiting for its ResourceSlice`);
  await theSlice('the ResourceSlice');
  const draPods = await podRuns('dra', draPod);
  const plainPods = await podRuns('plain', plainPod);

  // Slice re-publish after the wipe the kubelet does at start-up, done here through the API.
  const republish: number[] = [];
  for (let i = 0; i < N; i++) {
    const before = await theSlice('the ResourceSlice');
    await kube.json('DELETE', `/apis/resource.k8s.io/v1/resourceslices/${before.metadata.name}`);
    const t0 = now();
    await theSlice('the ResourceSlice back', before.metadata.uid);
    republish.push(now() - t0);
    log(`slice back ${ms(republish.at(-1)!)} ms after DELETE`);
    await sleep(500);
  }

  // One real kubelet restart: from the kubelet's start to the slice back (a new UID: wiped, then made again).
  const before = await theSlice('the ResourceSlice');
  await stopDaemon(info, 'kubelet');
  const t0 = now();
  startDaemon(info, 'kubelet');
  let wipedMs: number | undefined;
  const back = await waitFor(
    'the ResourceSlice back after the kubelet restart',
    120_000,
    async () => {
      alive();
      const s = await slices();
      if (wipedMs === undefined && !s.some((x) => x.metadata.uid === before.metadata.uid)) wipedMs = now() - t0;
      return s.length === 1 && s[0]!.metadata.uid !== before.metadata.uid ? (s[0] as Json) : undefined;
    },
    POLL_MS,
  );
  const sliceBackMs = now() - t0;
  await waitNodeReady(info, kube);
  const nodeReadyMs = now() - t0; // at most: seen after the slice
  log(`kubelet restart: slice wiped at ${ms(wipedMs ?? NaN)} ms, back at ${ms(sliceBackMs)} ms after the kubelet started`);

  // Device-plugin path: the same agent restarted on DevicePlugin; wait for the pool in node allocatable.
  await agent.stop();
  agent = start('DevicePlugin', true);
  await waitFor('the ResourceSlice removed', 60_000, async () => {
    alive();
    return (await slices()).length === 0 ? true : undefined;
  });
  await waitFor('emuv.io/vgpu and emuv.io/vram-virtual in node allocatable', 60_000, async () => {
    alive();
    const a = (await kube.node()).status?.allocatable ?? {};
    return Number(a[VGPU] ?? 0) > 0 && Number(a[VRAM_VIRTUAL] ?? 0) > 0 ? true : undefined;
  });
  const dpPods = await podRuns('dp', devicePluginPod);

  const dra = runs(draPods);
  const dp = runs(dpPods);
  const plain = runs(plainPods);
  const cluster = {
    benchmark: 'dra against the real kubelet, scheduler and containerd',
    date: new Date().toISOString(),
    machine: machine(),
    kubernetes: info.kubernetesVersion,
    method:
      `sequential, ${N} runs each after one warm-up; pod create (POST) to a GET seeing phase Running, GETs ${POLL_MS} ms apart; ` +
      'each pod deleted (grace 0) and gone before the next',
    podCreateToRunningMs: {
      draClaim1Gi: dra,
      devicePlugin1Gi: dp,
      baselineNoGpu: plain,
      ratioDraToDevicePluginP50: Math.round((dra.p50Ms / dp.p50Ms) * 100) / 100,
      draOverBaselineP50Ms: ms(dra.p50Ms - plain.p50Ms),
      devicePluginOverBaselineP50Ms: ms(dp.p50Ms - plain.p50Ms),
    },
    sliceRepublishAfterApiDeleteMs: {
      ...runs(republish),
      note: "the node's ResourceSlice deleted through the API (what the kubelet's start-up wipe does); from the DELETE's answer to a GET seeing a slice with another UID",
    },
    kubeletRestart: {
      sliceBackMs: ms(sliceBackMs),
      sliceWipedMs: wipedMs === undefined ? null : ms(wipedMs),
      nodeReadyByMs: ms(nodeReadyMs),
      newGeneration: back.spec?.pool?.generation,
      note: 'one run; times from starting the kubelet (stopped just before): the old slice gone, then a slice with another UID; node Ready checked after',
    },
  };
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const previous = existsSync(RESULTS) ? (JSON.parse(readFileSync(RESULTS, 'utf8')) as Record<string, unknown>) : {};
  writeFileSync(RESULTS, `${JSON.stringify({ ...previous, cluster }, null, 2)}\n`);
  console.log(JSON.stringify(cluster, null, 2));
} finally {
  await kube.deleteNamespace(NS).catch(() => undefined);
  await agent?.stop();
  await removeDraObjects(kube, info.nodeName);
  await clearNodeResource(kube, VRAM_VIRTUAL).catch(() => undefined);
  await clearNodeResource(kube, VGPU).catch(() => undefined);
  kube.close();
  if (process.env.EMUV_KEEP_CLUSTER === '1') log('EMUV_KEEP_CLUSTER=1: leaving the cluster running');
  else await stopCluster(loadCluster(info.paths), log);
}

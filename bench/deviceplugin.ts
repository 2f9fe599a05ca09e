/**
 * Device plugin benchmark (targets in docs/benchmarks.md): Allocate latency p50/p99 over real gRPC (1,000 calls),
 * start-to-registered time, RSS after 10,000 Allocates, and how fast the agent reacts: kubelet restart to
 * re-registered, a GPU's device node vanishing to its slots Unhealthy and back (the integration tests only
 * check that these happen; the times are measured here). The agent runs as the bundled production
 * command (dist/emuv.mjs, `npm run build` first) in its own process; the stand-in kubelet runs here.
 * Baseline in the same run: a no-op grpc-js plugin answering the same-sized response.
 * Writes bench/results/deviceplugin.json. Usage: node bench/deviceplugin.ts
 */
import { credentials } from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { devicePluginApi, type DevicePluginClient } from '../protos/deviceplugin.ts';
import { AgentApiServer } from '../test/fakes/agent-apiserver.ts';
import { StandInKubelet } from '../localcluster/stand-in-kubelet.ts';
import { copyNodeFixture, NODE_BIN, REPO_ROOT, tempDir } from '../localcluster/repo.ts';
import { agentFlags } from '../test/helpers.ts';
import { machine, percentile, summarize } from './lib.ts';
import { AGENT_NODE_FLAGS } from './agent-flags.ts';

const LATENCY_CALLS = 1000;
const RSS_CALLS = 10_000;
const START_RUNS = 5;
const REACT_RUNS = 5;

const tmp = tempDir('emuv-bench-');
const roots = copyNodeFixture('one-gpu', join(tmp.path, 'node'));

function rssMiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k: string) => Number(new RegExp(`^${k}:\\s+([0-9]+) kB`, 'm').exec(status)![1]);
  return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
}

function allocateOnce(client: DevicePluginClient, id: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) =>
    client.Allocate({ container_requests: [{ devices_ids: [id] }] }, (err) =>
      err ? reject(err) : resolve(Number(process.hrtime.bigint() - t0) / 1e6),
    ),
  );
}

async function timeAllocates(client: DevicePluginClient, n: number): Promise<number[]> {
  for (let i = 0; i < 50; i++) await allocateOnce(client, `gpu-0000-01-00-0-s${String(i % 16).padStart(2, '0')}`); // warm-up
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await allocateOnce(client, `gpu-0000-01-00-0-s${String(i % 16).padStart(2, '0')}`));
  return out;
}

function agentArgs(dpDir: string, extra: string[]): string[] {
  return [
    join(REPO_ROOT, 'dist', 'emuv.mjs'),
    'plugin',
    ...agentFlags(roots, tmp.path, dpDir, '--gpu-memory=0000:01:00.0=8Gi', '--log-level=warn', ...extra),
  ];
}

async function runAgent(
  name: string,
  extra: string[],
  nodeFlags: string[] = AGENT_NODE_FLAGS,
): Promise<{ kubelet: StandInKubelet; child: ChildProcess; registeredMs: number }> {
  const dpDir = join(tmp.path, `dp-${name}`);
  mkdirSync(dpDir, { recursive: true });
  const kubelet = new StandInKubelet(dpDir);
  await kubelet.start();
  const t0 = process.hrtime.bigint();
  const child = spawn(NODE_BIN, [...nodeFlags, ...agentArgs(dpDir, extra)], { stdio: ['ignore', 'ignore', 'inherit'] });
  await kubelet.waitFor(() => kubelet.registrations.length > 0, 15_000, 'registration');
  const registeredMs = Number(process.hrtime.bigint() - t0) / 1e6;
  return { kubelet, child, registeredMs };
}

async function stopAgent(a: { kubelet: StandInKubelet; child: ChildProcess }) {
  const exited = new Promise((r) => a.child.on('exit', r));
  a.child.kill('SIGTERM');
  await exited;
  await a.kubelet.stop();
}

async function main() {
  // 1. Start to registered, fresh process each time.
  const starts: number[] = [];
  for (let i = 0; i < START_RUNS; i++) {
    const a = await runAgent(`start${i}`, ['--node-status=off']);
    starts.push(a.registeredMs);
    await stopAgent(a);
  }

  // 2. Reactions, one agent: kubelet restart -> registered again with all slots; /dev/nvidia0 removed ->
  // every slot Unhealthy; restored -> Healthy.
  const reregister: number[] = [];
  const unhealthy: number[] = [];
  const healthy: number[] = [];
  {
    const a = await runAgent('react', ['--node-status=off']);
    const k = a.kubelet;
    const since = async (t0: bigint, done: () => boolean, what: string) => {
      await k.waitFor(done, 15_000, what);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const allAre = (h: string) => () => k.devices.length === 16 && k.devices.every((d) => d.health === h);
    for (let i = 0; i < REACT_RUNS; i++) {
      const n = k.registrations.length;
      const t0 = process.hrtime.bigint();
      await k.restart();
      reregister.push(await since(t0, () => k.registrations.length === n + 1 && k.devices.length === 16, 're-registration'));
      const dev0 = join(roots.dev, 'nvidia0');
      const t1 = process.hrtime.bigint();
      rmSync(dev0);
      unhealthy.push(await since(t1, allAre('Unhealthy'), 'slots unhealthy'));
      const t2 = process.hrtime.bigint();
      writeFileSync(dev0, '');
      healthy.push(await since(t2, allAre('Healthy'), 'slots healthy'));
    }
    await stopAgent(a);
  }
  const stat = (xs: number[]) => {
    const sorted = [...xs].sort((x, y) => x - y);
    return { runs: xs.map((x) => Math.round(x)), median: Math.round(percentile(sorted, 50)), max: Math.round(sorted.at(-1)!) };
  };

  // 3. Allocate latency, then RSS after 10,000 Allocates: standalone (no Kubernetes client) and
  // with node status on (client loaded, a fake apiserver answering), with production V8 flags and
  // with Node's defaults.
  const api = new AgentApiServer('bench-node');
  await api.start();
  const kubeconfig = join(tmp.path, 'kubeconfig');
  api.writeKubeconfig(kubeconfig);
  const modes = {
    nodeStatusOff: ['--node-status=off'],
    nodeStatusOn: ['--node-status=on', '--node-name=bench-node', `--kubeconfig=${kubeconfig}`],
  };
  let latency: number[] = [];
  const rss: Record<string, Record<string, number>> = {};
  for (const [flagsName, flags] of [
    ['productionFlags', AGENT_NODE_FLAGS],
    ['nodeDefaults', []],
  ] as const) {
    for (const [mode, extra] of Object.entries(modes)) {
      const a = await runAgent(`${flagsName}-${mode}`, extra, [...flags]);
      const client = a.kubelet.current!.client;
      if (flagsName === 'productionFlags' && mode === 'nodeStatusOff') latency = await timeAllocates(client, LATENCY_CALLS);
      for (let i = 0; i < RSS_CALLS; i++) await allocateOnce(client, `gpu-0000-01-00-0-s${String(i % 16).padStart(2, '0')}`);
      const m = rssMiB(a.child.pid!);
      (rss[flagsName] ??= {})[mode] = Math.round(m.rss * 10) / 10;
      rss[flagsName]![`${mode}Peak`] = Math.round(m.hwm * 10) / 10;
      await stopAgent(a);
    }
  }
  const statusPatched = api.node.status?.capacity?.['emuv.io/vram-virtual'] === '25232932864';
  await api.stop();

  // 4. Baseline: no-op grpc-js plugin, same client, same response size.
  const sock = join(tmp.path, 'noop.sock');
  const noop = spawn(NODE_BIN, [join(REPO_ROOT, 'bench', 'noop-plugin.ts'), sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((r) => noop.stdout!.once('data', () => r()));
  const DevicePlugin = devicePluginApi().DevicePlugin;
  const nClient = new DevicePlugin(`unix://${sock}`, credentials.createInsecure());
  const baseline = await timeAllocates(nClient, LATENCY_CALLS);
  nClient.close();
  noop.kill('SIGTERM');

  const s = summarize(latency);
  const b = summarize(baseline);
  const st = [...starts].sort((x, y) => x - y);
  const result = {
    benchmark: 'deviceplugin',
    date: new Date().toISOString(),
    machine: machine(),
    allocate: { ...s, targetP99Ms: 5, meetsTarget: s.p99Ms <= 5 },
    baselineNoopAllocate: b,
    ratioP50: Math.round((s.p50Ms / b.p50Ms) * 100) / 100,
    ratioP99: Math.round((s.p99Ms / b.p99Ms) * 100) / 100,
    startToRegisteredMs: {
      runs: st.map((x) => Math.round(x)),
      median: Math.round(percentile(st, 50)),
      max: Math.round(st.at(-1)!),
      targetMs: 1000,
      meetsTarget: st.at(-1)! <= 1000,
    },
    rssAfter10kAllocatesMiB: {
      agentNodeFlags: AGENT_NODE_FLAGS.join(' '),
      ...rss,
      targetMiB: 80,
      meetsTarget: rss.productionFlags!.nodeStatusOn! <= 80 && rss.productionFlags!.nodeStatusOff! <= 80,
    },
    nodeStatusPatchedDuringRun: statusPatched,
    kubeletRestartToReregisteredMs: stat(reregister),
    deviceNodeGoneToUnhealthyMs: stat(unhealthy),
    deviceNodeBackToHealthyMs: stat(healthy),
  };
  mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(REPO_ROOT, 'bench', 'results', 'deviceplugin.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
}

main()
  .finally(() => tmp.cleanup())
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });

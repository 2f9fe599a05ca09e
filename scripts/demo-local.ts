/**
 * `npm run demo:local`: emuv's node-side pipeline on one machine, without a cluster or root, on a simulated 8 GiB GeForce when there is no
 * NVIDIA GPU (a sysfs fixture + the simulated driver, clearly labelled), on the real GPU otherwise.
 *
 *   1. the node agent discovers the GPU and computes what the node offers;
 *   2. it registers its device plugin with a kubelet (a stand-in speaking the real gRPC API);
 *   3. a pod asks for emuv.io/vram-virtual: 28Gi; the admission webhook's mutation runs on it;
 *   4. the kubelet's Allocate gives the container its GPU, mounts and EMUV_* environment;
 *   5. the workload (native/examples/vram-demo.c, linked with -ldl only) runs with the interposer
 *      preloaded, sees a 28 GiB card and allocates 20 GiB: VRAM first, the rest spilled to host RAM;
 *   6. what an operator sees: /status, /metrics and `emuv top --once`.
 *
 * `npm run demo` is the whole product on a real cluster (control plane, kubelet, the Helm chart, the
 * image); this one needs neither root nor a cluster, and shows each step's data up close.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { CONTRACT_VERSION, ENV } from '../common/contracts/interposer.ts';
import { nopLogger } from '../common/log.ts';
import { admissionPolicyFor, mutatePod } from '../operator/webhook/mutate-pod.ts';
import { startAgent } from '../plugin/agent/agent.ts';
import { parsePluginConfig } from '../plugin/config.ts';
import { openNvml } from '../plugin/discovery/nvml.ts';
import { discoverNode } from '../plugin/discovery/discover.ts';
import { formatDiscoverText } from '../plugin/discovery/report.ts';
import { buildInventory } from '../plugin/inventory/inventory.ts';
import {
  copyNodeFixture,
  hostDriver,
  REPO_ROOT,
  runEmuv,
  SIMULATED_GPU,
  SIMULATED_VRAM,
  StandInKubelet,
  tempDir,
} from '../localcluster/index.ts';

const GiB = 2 ** 30;
const LIMIT = '28Gi';
const say = (s = '') => process.stdout.write(`${s}\n`);
const section = (s: string) => say(`\n== ${s}`);
const indent = (text: string) => text.replace(/\n$/, '').replace(/^/gm, '   ');

async function main(): Promise<void> {
  const tmp = tempDir('emuv-demo-');
  say('emuv demo: virtual GPU memory, VRAM first, then host RAM');
  section('building the interposer, the simulated driver and the demo workload (make -C native)');
  execFileSync('make', ['-C', join(REPO_ROOT, 'native'), '-s', 'all'], { stdio: 'inherit' });

  const driver = hostDriver();
  const simDir = join(REPO_ROOT, 'native', 'build', 'sim');
  let roots: { sys: string; proc: string; dev: string };
  let nvmlPath: string;
  let driverLibDir: string;
  const env: Record<string, string> = {};
  if (driver) {
    say('A real NVIDIA GPU is present: the demo uses it (sysfs, NVML and the driver of this machine).');
    roots = { sys: '/sys', proc: '/proc', dev: '/dev' };
    nvmlPath = 'libnvidia-ml.so.1';
    driverLibDir = join(driver.libcuda, '..');
  } else {
    say('SIMULATED: no NVIDIA GPU here. The node is the sysfs/proc fixture test/fixtures/nodes/demo-geforce (a');
    say('GeForce RTX 4060 on PCIe 4.0 x8, 48 GiB of RAM) and the driver is native/build/sim (an 8 GiB card whose memory');
    say('is host memory the test driver maps). Everything emuv does on top of them is the real code.');
    roots = copyNodeFixture('demo-geforce', join(tmp.path, 'node'));
    nvmlPath = join(simDir, 'libnvidia-ml.so.1');
    driverLibDir = simDir;
    Object.assign(env, { EMUV_SIM_VRAM: SIMULATED_VRAM, EMUV_SIM_PCI_BUS_ID: SIMULATED_GPU });
    Object.assign(process.env, env); // the simulated NVML reads these inside this process too
  }

  section('1. the node agent discovers the node (emuv discover)');
  const nvml = openNvml(nvmlPath);
  if (!nvml.nvml) throw new Error(`NVML: ${nvml.reason}`);
  const cfg = parsePluginConfig(
    [
      '--node-status=off',
      '--node-name=demo-node',
      `--sys-root=${roots.sys}`,
      `--proc-root=${roots.proc}`,
      `--dev-root=${roots.dev}`,
      `--host-dev-dir=${roots.dev}`,
      `--device-plugin-dir=${join(tmp.path, 'device-plugins')}`,
      `--state-dir=${join(tmp.path, 'state')}`,
      `--interposer-dir=${join(tmp.path, 'usr-local-emuv')}`,
      `--driver-lib-dir=${driverLibDir}`,
      `--pod-resources-socket=${join(tmp.path, 'pod-resources.sock')}`,
      `--nvml-library=${nvmlPath}`,
      '--metrics-addr=127.0.0.1:0',
    ],
    {},
  );
  const node = discoverNode({ sysRoot: cfg.sysRoot, procRoot: cfg.procRoot, nvml: nvml.nvml, gpuMemory: cfg.gpuMemory });
  const inventory = buildInventory(node, cfg.capacity);
  say(indent(formatDiscoverText(node, inventory, cfg.capacity)));
  if (inventory.gpus.length === 0) throw new Error('no GPU offered; see the warnings above');

  section('2. the agent registers its device plugin with the kubelet');
  mkdirSync(cfg.devicePluginDir, { recursive: true });
  const kubelet = new StandInKubelet(cfg.devicePluginDir);
  await kubelet.start();
  await kubelet.servePodResources(cfg.podResourcesSocket!);
  const agent = await startAgent(cfg, { logger: nopLogger, nvml: nvml.nvml });
  await kubelet.waitFor(() => kubelet.devices.length > 0, 10_000, 'registration');
  const reg = kubelet.current!.request;
  say(
    `   Register(${reg.resource_name}, ${reg.version}, endpoint ${reg.endpoint}) -> ${kubelet.devices.length} slots, e.g. ${kubelet.devices[0]!.ID}`,
  );
  say(
    `   node capacity the agent publishes: emuv.io/vram-virtual ${inventory.vramVirtualBytes} (${(inventory.vramVirtualBytes / GiB).toFixed(1)} GiB)`,
  );

  section(`3. a pod asks for emuv.io/vram-virtual: ${LIMIT}; the admission webhook mutates it`);
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'llm-0', namespace: 'demo' },
    spec: { containers: [{ name: 'main', image: 'llm-server', resources: { limits: { 'emuv.io/vram-virtual': LIMIT } } }] },
  };
  const mutation = mutatePod(pod, admissionPolicyFor([], 'demo', {}));
  if (!mutation.allowed) throw new Error(mutation.message);
  for (const op of mutation.patch) say(`   ${op.op} ${op.path} ${'value' in op ? JSON.stringify(op.value) : ''}`);
  const limitBytes = String(28 * GiB);

  section('4. the kubelet calls Allocate for the slot the scheduler gave the pod');
  const slot = kubelet.devices[0]!.ID;
  const res = await kubelet.allocate([[slot]]);
  const c = res.container_responses[0]!;
  for (const [k, v] of Object.entries(c.envs).sort()) say(`   env   ${k}=${v}`);
  for (const m of c.mounts) say(`   mount ${m.host_path} -> ${m.container_path}${m.read_only ? ' (ro)' : ''}`);
  for (const d of c.devices) say(`   dev   ${d.host_path} -> ${d.container_path}`);
  kubelet.podResources = [
    {
      name: 'llm-0',
      namespace: 'demo',
      containers: [{ name: 'main', devices: [{ resource_name: 'emuv.io/vgpu', device_ids: [slot], topology: null }] }],
    },
  ];

  section('5. the workload runs with the interposer preloaded (native/examples/vram-demo.c, -ldl only)');
  // Outside a container: the preload list becomes LD_PRELOAD, the stats mount its host directory.
  const lib = c.mounts.find((m) => m.container_path === '/usr/local/emuv/lib')!.host_path;
  const statsDir = c.mounts.find((m) => m.container_path === '/run/emuv')!.host_path;
  const workloadEnv = {
    ...process.env,
    ...env,
    ...c.envs,
    [ENV.contractVersion]: String(CONTRACT_VERSION),
    [ENV.limitBytes]: limitBytes,
    [ENV.statsFile]: join(statsDir, 'stats.bin'),
    LD_PRELOAD: `${join(lib, 'libemuv-cuda.so')}:${join(lib, 'libemuv-nvml.so')}`,
  };
  const workload = spawn(join(REPO_ROOT, 'native', 'build', 'examples', 'vram-demo'), [], {
    env: workloadEnv,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    workload.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      process.stdout.write(indent(d.toString()) + '\n');
      if (out.includes('ready\n')) resolve();
    });
    workload.on('exit', (code) => reject(new Error(`the workload exited early (${code})`)));
  });
  // The agent tells running processes from exited ones through --proc-root, here the fixture's: show it
  // the workload's /proc entry, as the host's /proc would (docs/agent.md, Live processes).
  if (roots.proc !== '/proc' && workload.pid !== undefined) symlinkSync(`/proc/${workload.pid}`, join(roots.proc, String(workload.pid)));

  section('6. what emuv shows while it runs');
  const status = await agent.refreshStatus();
  const mine = status.containers[0];
  if (mine)
    say(
      `   /status: ${mine.owner?.namespace}/${mine.owner?.pod}/${mine.owner?.container}: limit ${(mine.limitBytes / GiB).toFixed(1)} GiB, ` +
        `VRAM ${(mine.vramUsedBytes / GiB).toFixed(2)} GiB, spilled to host RAM ${(mine.hostUsedBytes / GiB).toFixed(2)} GiB, spill events ${mine.spillEvents}`,
    );
  const metrics = await (await fetch(`http://127.0.0.1:${agent.metricsPort}/metrics`)).text();
  say('   /metrics (excerpt):');
  for (const line of metrics.split('\n'))
    if (/^emuv_(container_(limit|vram_used|host_spill)_bytes|node_vram_virtual_bytes|allocations_total)/.test(line)) say(`     ${line}`);
  say('   emuv top --once:');
  const top = await runEmuv(['top', '--once', `--url=http://127.0.0.1:${agent.metricsPort}`]);
  say(indent(top.stdout));

  workload.stdin.end();
  await new Promise((r) => workload.on('close', r));
  await agent.stop();
  await kubelet.stop();
  tmp.cleanup();
  say('\nDone. Nothing is left running; the demo worked in a temporary directory that is now removed.');
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});

// Runs the emuv node agent (plugin/main.ts `plugin`) as a host process against the test cluster, on the
// one-gpu sysfs/procfs fixture. /dev/nvidia* are harmless character devices (mknod with /dev/null's
// major:minor) in a dev root of its own; the interposer "libraries" are placeholder files, so this layer
// does not depend on the native build. All its directories are under the cluster's run directory, so a
// crashed run's agent is found and stopped by the cluster's clean-up like every other cluster process.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LIBRARY_FILES } from '../../common/contracts/interposer.ts';
import {
  makeStandInDevices,
  NODE_BIN,
  NODE_FIXTURES,
  NVIDIA_DEVICE_NODES,
  REPO_ROOT,
  type ClusterInfo,
  type Json,
  type Kube,
} from '../../localcluster/index.ts';
import { DEVICE_CLASS, DRA_DRIVER } from '../../common/contracts/dra.ts';

export const FIXTURE = path.join(NODE_FIXTURES, 'one-gpu');
export const FIXTURE_GPU = '0000:01:00.0';
export const FIXTURE_DEVICES = NVIDIA_DEVICE_NODES;
export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

/** Flags that make the published capacity a known number: 8Gi VRAM - 512Mi reserve + 8Gi host spill. */
export const AGENT_CAPACITY = { vram: '8Gi', reserve: '512Mi', spill: '8Gi', slots: 16 };
export const EXPECTED_VRAM_VIRTUAL = 8 * GiB - 512 * MiB + 8 * GiB;

export interface RunningAgent {
  name: string;
  dir: string;
  log: string;
  child: ChildProcess;
  stop(): Promise<void>;
  logText(): string;
}

export interface AgentOptions {
  /** A node fixture under test/fixtures/nodes; one-gpu when unspecified. */
  fixture?: string;
  /** --gpu-memory entries; the one-gpu fixture's when unspecified. */
  gpuMemory?: string[];
  devices?: string[];
  /** More flags, appended (a later flag wins). */
  args?: string[];
  /** Keep the agent's directory from an earlier run (its state: stats directories, the DRA checkpoint). */
  keepDir?: boolean;
}

export function startAgent(info: ClusterInfo, name: string, o: AgentOptions = {}): RunningAgent {
  const dir = path.join(info.paths.runDir, `agent-${name}`);
  const fixture = o.fixture ? path.join(NODE_FIXTURES, o.fixture) : FIXTURE;
  if (!o.keepDir) rmSync(dir, { recursive: true, force: true });
  const dev = path.join(dir, 'dev');
  const src = path.join(dir, 'interposer-src');
  rmSync(dev, { recursive: true, force: true });
  makeStandInDevices(dev, o.devices ?? FIXTURE_DEVICES);
  mkdirSync(src, { recursive: true });
  for (const f of Object.values(LIBRARY_FILES)) writeFileSync(path.join(src, f), `emuv cluster-test placeholder for ${f}\n`);

  const node = NODE_BIN;
  const args = [
    path.join(REPO_ROOT, 'plugin/main.ts'),
    'plugin',
    `--node-name=${info.nodeName}`,
    `--kubeconfig=${info.kubeconfig}`,
    `--sys-root=${fixture}/sys`,
    `--proc-root=${fixture}/proc`,
    `--dev-root=${dev}`,
    `--host-dev-dir=${dev}`,
    '--nvml-library=off',
    ...(o.gpuMemory ?? [`${FIXTURE_GPU}=${AGENT_CAPACITY.vram}`]).map((g) => `--gpu-memory=${g}`),
    `--vram-reserve=${AGENT_CAPACITY.reserve}`,
    `--host-spill=${AGENT_CAPACITY.spill}`,
    `--slots-per-gpu=${AGENT_CAPACITY.slots}`,
    `--device-plugin-dir=${info.devicePluginDir}`,
    `--state-dir=${dir}/state`,
    `--interposer-dir=${dir}/interposer`,
    `--interposer-source=${src}`,
    '--metrics-addr=off',
    '--log-level=debug',
    ...(o.args ?? []),
  ];
  const log = path.join(info.paths.logDir, `agent-${name}.log`);
  const fd = openSync(log, 'a');
  writeFileSync(fd, `\n===== ${new Date().toISOString()} starting: ${node} ${args.join(' ')}\n`);
  const child = spawn(node, args, { stdio: ['ignore', fd, fd], cwd: REPO_ROOT });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    name,
    dir,
    log,
    child,
    logText: () => readFileSync(log, 'utf8'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

/** Removes an extended resource from the node's capacity and allocatable (test cleanup). */
export async function clearNodeResource(kube: Kube, resource: string): Promise<void> {
  const node = await kube.node();
  const ptr = resource.replace(/~/g, '~0').replace(/\//g, '~1');
  const ops = ['capacity', 'allocatable']
    .filter((f) => node.status?.[f]?.[resource] !== undefined)
    .map((f) => ({ op: 'remove', path: `/status/${f}/${ptr}` }));
  if (ops.length > 0) await kube.patchNodeStatus(ops);
}

/** The ResourceSlices emuv's DRA driver publishes for `nodeName`. */
export async function nodeSlices(kube: Kube, nodeName: string): Promise<Json[]> {
  const q = `fieldSelector=spec.nodeName%3D${nodeName},spec.driver%3D${DRA_DRIVER}`;
  return (await kube.get(`/apis/resource.k8s.io/v1/resourceslices?${q}`)).items as Json[];
}

/** Teardown after a DRA agent run: the node's slices and emuv's device class go (absent ones are fine). */
export async function removeDraObjects(kube: Kube, nodeName: string): Promise<void> {
  for (const s of await nodeSlices(kube, nodeName).catch(() => []))
    await kube.json('DELETE', `/apis/resource.k8s.io/v1/resourceslices/${s.metadata.name}`).catch(() => undefined);
  await kube.json('DELETE', `/apis/resource.k8s.io/v1/deviceclasses/${DEVICE_CLASS}`).catch(() => undefined);
}

/** The agent as a DRA driver on this cluster: its kubelet plugin directories, CDI directory and PodResources socket. */
export function draAgentArgs(info: ClusterInfo): string[] {
  return [
    '--dra=on',
    `--cdi-dir=${info.cdiDir}`,
    `--kubelet-plugins-dir=${info.kubeletPluginsDir}`,
    `--kubelet-registry-dir=${info.kubeletRegistryDir}`,
    '--host-spill=8Gi',
    `--pod-resources-socket=${info.podResourcesSocket}`,
  ];
}

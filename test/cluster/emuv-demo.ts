// emuv installed the way an operator installs it, on the harness cluster: the image (built without a
// container engine, test/cluster/images/emuv-image.ts) imported into the node's containerd, the Helm chart
// installed with `helm install --wait`, the agent running as the chart's DaemonSet and the operator as its
// Deployment. Without a GPU the node's GPU is the SIMULATED 8 GiB GeForce of `npm run demo:local` (sysfs/procfs
// fixture test/fixtures/nodes/demo-geforce, device nodes with /dev/null's numbers, the simulated driver in
// the workload image where the NVIDIA container toolkit would inject the real one). With a GPU (`npm run
// demo` only; the test always simulates) the node is this machine: its sysfs, /proc and /dev, VRAM sizes
// from its NVML, and its libcuda/libnvidia-ml mounted into the workload as the toolkit would.
//
// `npm run demo` (scripts/demo.ts) prints these steps; test/cluster/delivery-e2e.test.ts runs the same
// functions and asserts what they return.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openNvml } from '../../plugin/discovery/nvml.ts';
import { NODE_BIN, type HostDriver } from '../helpers.ts';
import {
  buildEmuvImage,
  buildOutputs,
  buildWorkloadImage,
  DRIVER_LIB_DIR,
  EMUV_IMAGE,
  EMUV_IMAGE_REPOSITORY,
  EMUV_IMAGE_TAG,
  WORKLOAD_IMAGE,
} from './images/emuv-image.ts';
import type { Kube } from './harness.ts';
import { DEVICE_PLUGIN_DIR, KubeError, NODE_IP, waitFor, type ClusterInfo, type Json } from './harness.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
export const RELEASE = 'emuv';
export const NAMESPACE = 'emuv-system';
export const DEMO_NAMESPACE = 'demo';
export const DEMO_POD = 'llm-0';
export const DEMO_LIMIT = '28Gi';
/** The label NVIDIA's GPU feature discovery puts on GPU nodes; the chart's agent nodeSelector. */
export const GPU_NODE_LABEL = 'nvidia.com/gpu.present';
const GPU = '0000:01:00.0';
const DEVICES = ['nvidia0', 'nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools'];
const AGENT_METRICS_PORT = 9402;

/** Host directories of the node's GPU and of what the agent puts on the node. */
export interface GpuNode {
  sys: string;
  proc: string;
  dev: string;
  state: string;
  interposer: string;
  /** VRAM per GPU for the agent (`agent.gpuMemory`): its container has no NVML here. */
  gpuMemory: string[];
  /** This machine's driver; null: the simulated GeForce. */
  driver: HostDriver | null;
}

/**
 * With `driver` null, lays the simulated GPU out under the run directory (the fixture's sysfs/procfs and
 * real device nodes); with this machine's driver, points at the host's own and asks its NVML for VRAM.
 */
export function prepareGpuNode(info: ClusterInfo, driver: HostDriver | null = null): GpuNode {
  const root = path.join(info.paths.runDir, 'gpu-node');
  rmSync(root, { recursive: true, force: true });
  const state = path.join(root, 'run-emuv');
  const interposer = path.join(root, 'usr-local-emuv');
  for (const d of [state, interposer]) mkdirSync(d, { recursive: true });
  if (driver) {
    const opened = openNvml(driver.libnvml);
    if (!opened.nvml) throw new Error(`NVML of this machine: ${opened.reason}`);
    const gpuMemory = opened.nvml.gpus().map((g) => `${g.pciAddress}=${g.memoryBytes}`);
    opened.nvml.close();
    return { sys: '/sys', proc: '/proc', dev: '/dev', state, interposer, gpuMemory, driver };
  }
  const fixture = path.join(repoRoot, 'test/fixtures/nodes/demo-geforce');
  const n: GpuNode = {
    sys: path.join(root, 'sys'),
    proc: path.join(root, 'proc'),
    dev: path.join(root, 'dev'),
    state,
    interposer,
    gpuMemory: [`${GPU}=8Gi`],
    driver: null,
  };
  cpSync(path.join(fixture, 'sys'), n.sys, { recursive: true, verbatimSymlinks: true });
  cpSync(path.join(fixture, 'proc'), n.proc, { recursive: true, verbatimSymlinks: true });
  mkdirSync(n.dev);
  // Character devices with /dev/null's numbers: the container runtime creates them in containers like a GPU's.
  for (const d of DEVICES) {
    const r = spawnSync('mknod', ['-m', '0666', path.join(n.dev, d), 'c', '1', '3'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mknod ${d}: ${r.stderr}`);
  }
  return n;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): { status: number | null; out: string; stdout: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
}

function must(what: string, r: { status: number | null; out: string }): string {
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}):\n${r.out}`);
  return r.out;
}

/** Builds the emuv image and the workload image and imports both into the node's containerd. */
export function loadImages(info: ClusterInfo, log: (s: string) => void, driver: HostDriver | null = null): void {
  const dir = path.join(info.paths.runDir, 'images');
  mkdirSync(dir, { recursive: true });
  log('building dist/ (npm run build) and native/build (make -C native)');
  buildOutputs(NODE_BIN);
  const archives = [buildEmuvImage(dir, NODE_BIN), buildWorkloadImage(dir, driver?.libcuda)];
  const ctr = ['--address', `${info.paths.containerd}/containerd.sock`, '-n', 'k8s.io'];
  for (const a of archives) must(`ctr images import ${a}`, run('ctr', [...ctr, 'images', 'import', a]));
  const have = run('ctr', [...ctr, 'images', 'ls', '-q']).stdout.split('\n');
  for (const img of [EMUV_IMAGE, WORKLOAD_IMAGE]) if (!have.includes(img)) throw new Error(`image ${img} missing after import`);
  log(`imported ${EMUV_IMAGE} and ${WORKLOAD_IMAGE} into the node's containerd`);
}

const helmEnv = (info: ClusterInfo): NodeJS.ProcessEnv => {
  const home = path.join(info.paths.runDir, 'helm');
  return {
    ...process.env,
    KUBECONFIG: info.kubeconfig,
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_DATA_HOME: path.join(home, 'data'),
  };
};

export const helm = (info: ClusterInfo, args: string[]) => run(path.join(info.bin.helm, 'helm'), args, helmEnv(info));
export const kubectl = (info: ClusterInfo, args: string[]) =>
  run(path.join(info.bin.kubernetes, 'kubectl'), args, { ...process.env, KUBECONFIG: info.kubeconfig });

/** Chart values for this cluster: only paths, addresses and the simulated GPU differ from a real install. */
export function chartValues(info: ClusterInfo, node: GpuNode): Json {
  return {
    image: { repository: EMUV_IMAGE_REPOSITORY, tag: EMUV_IMAGE_TAG, pullPolicy: 'Never' },
    // No kube-proxy on the test node: pods reach the apiserver at its node address.
    kubernetesApi: { host: NODE_IP, port: 6443 },
    agent: {
      hostPaths: {
        sys: node.sys,
        proc: node.proc,
        dev: node.dev,
        devicePluginDir: DEVICE_PLUGIN_DIR,
        podResourcesDir: path.dirname(info.podResourcesSocket),
        stateDir: node.state,
        interposerDir: node.interposer,
      },
      // No NVIDIA container runtime here, so no NVML in the agent's container: VRAM sizes are given.
      nvmlLibrary: 'off',
      gpuMemory: node.gpuMemory,
      metricsPort: AGENT_METRICS_PORT,
    },
    // The simulated node's sysfs says 48 GiB of RAM, this machine may have less: reserve no pod memory
    // for spill (mode None), so the 28Gi pod fits the real kubelet's memory capacity.
    defaultPolicy: { enabled: true, spec: { podMemory: { mode: 'None' } } },
  };
}

export interface InstallResult {
  helmOutput: string;
  vramVirtualBytes: number;
  agentPod: string;
  agentIP: string;
}

/** Labels the node as GPU feature discovery would, `helm install --wait`s the chart, waits for capacity. */
export async function installEmuv(info: ClusterInfo, kube: Kube, node: GpuNode, log: (s: string) => void): Promise<InstallResult> {
  await kube.json(
    'PATCH',
    `/api/v1/nodes/${info.nodeName}`,
    { metadata: { labels: { [GPU_NODE_LABEL]: 'true' } } },
    'application/merge-patch+json',
  );
  const valuesFile = path.join(info.paths.runDir, 'emuv-values.json');
  writeFileSync(valuesFile, JSON.stringify(chartValues(info, node), null, 2));
  log(`helm install ${RELEASE} helm/emuv --namespace ${NAMESPACE} --create-namespace --values ${valuesFile} --wait`);
  const helmOutput = must(
    'helm install',
    helm(info, [
      'install',
      RELEASE,
      path.join(repoRoot, 'helm/emuv'),
      '--namespace',
      NAMESPACE,
      '--create-namespace',
      '--values',
      valuesFile,
      '--wait',
      '--timeout',
      '4m',
    ]),
  );
  // Both resources: emuv.io/vram-virtual from the agent, emuv.io/vgpu from the kubelet's next status update
  // after the device plugin registered (a pod created before would wait for the scheduler's retry).
  const allocatable = await waitFor('emuv.io/vram-virtual and emuv.io/vgpu in the node allocatable', 120_000, async () => {
    const a = (await kube.node())?.status?.allocatable ?? {};
    const v = a['emuv.io/vram-virtual'];
    return v && v !== '0' && a['emuv.io/vgpu'] && a['emuv.io/vgpu'] !== '0' ? String(v) : undefined;
  });
  const pod = await waitFor('the agent pod running with an IP', 60_000, async () => {
    const pods = await kube.get(`/api/v1/namespaces/${NAMESPACE}/pods?labelSelector=app.kubernetes.io/component%3Dagent`);
    const p = (pods.items ?? []).find((x: Json) => x.status?.phase === 'Running' && x.status?.podIP);
    return p ?? undefined;
  });
  return { helmOutput, vramVirtualBytes: Number(allocatable), agentPod: pod.metadata.name, agentIP: pod.status.podIP };
}

/** The sample workload: asks for 28Gi of virtual GPU memory and allocates 20 GiB through the driver API. */
export function demoPod(node: GpuNode): Json {
  // Where the NVIDIA container toolkit would inject the driver: this machine's libraries over the image's
  // simulated ones; without a GPU, the simulated driver's card (8 GiB at the fixture's PCI address).
  const real = node.driver;
  const driverMounts = real
    ? [
        { name: 'libcuda', host: real.libcuda, file: 'libcuda.so.1' },
        { name: 'libnvml', host: real.libnvml, file: 'libnvidia-ml.so.1' },
      ]
    : [];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: DEMO_POD, namespace: DEMO_NAMESPACE, labels: { app: 'emuv-demo' } },
    spec: {
      terminationGracePeriodSeconds: 2,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      containers: [
        {
          name: 'main',
          image: WORKLOAD_IMAGE,
          imagePullPolicy: 'Never',
          // vram-demo holds its memory until its standard input closes: keep stdin open.
          stdin: true,
          env: real
            ? []
            : [
                { name: 'EMUV_SIM_VRAM', value: '8Gi' },
                { name: 'EMUV_SIM_PCI_BUS_ID', value: GPU },
              ],
          volumeMounts: driverMounts.map((m) => ({ name: m.name, mountPath: path.posix.join(DRIVER_LIB_DIR, m.file), readOnly: true })),
          resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { 'emuv.io/vram-virtual': DEMO_LIMIT } },
        },
      ],
      volumes: driverMounts.map((m) => ({ name: m.name, hostPath: { path: realpathSync(m.host), type: 'File' } })),
    },
  };
}

export interface WorkloadResult {
  /** The pod as stored: mutated by the webhook. */
  pod: Json;
  log: string;
}

export async function runWorkload(kube: Kube, node: GpuNode): Promise<WorkloadResult> {
  await kube.ensureNamespace(DEMO_NAMESPACE);
  await kube.json('DELETE', `/api/v1/namespaces/${DEMO_NAMESPACE}/pods/${DEMO_POD}?gracePeriodSeconds=0`).catch((e: unknown) => {
    if (!(e instanceof KubeError && e.status === 404)) throw e;
  });
  await waitFor('an earlier demo pod to be gone', 60_000, async () => {
    try {
      await kube.pod(DEMO_NAMESPACE, DEMO_POD);
      return undefined;
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) return true;
      throw e;
    }
  });
  // Admission is ready when a server-side dry run comes back mutated: until the operator has put its CA
  // into the webhook configuration, the apiserver cannot call the webhook and refuses emuv pods.
  await waitFor('the emuv webhook to admit pods', 60_000, async () => {
    try {
      const p = await kube.json('POST', `/api/v1/namespaces/${DEMO_NAMESPACE}/pods?dryRun=All`, demoPod(node));
      return p.spec.containers[0].resources.limits['emuv.io/vgpu'] === '1' || undefined;
    } catch (e) {
      if (e instanceof KubeError && e.status >= 500) return undefined;
      throw e;
    }
  });
  await kube.createPod(DEMO_NAMESPACE, demoPod(node));
  await kube.waitPodPhase(DEMO_NAMESPACE, DEMO_POD, 'Running', 120_000);
  const log = await waitFor('the workload to report ready', 120_000, async () => {
    const text = await kube.podLog(DEMO_NAMESPACE, DEMO_POD);
    if (/refused|FAILED|unavailable/.test(text) && !text.includes('ready')) throw new Error(`the workload failed:\n${text}`);
    return text.includes('ready\n') ? text : undefined;
  });
  return { pod: await kube.pod(DEMO_NAMESPACE, DEMO_POD), log };
}

export interface Observed {
  emuvNodes: string;
  metrics: string;
  top: string;
  status: Json;
}

/** What an operator looks at: kubectl get emuvnodes, the agent's /metrics and /status, emuv top --once. */
export async function observe(info: ClusterInfo, kube: Kube, agentIP: string): Promise<Observed> {
  const base = `http://${agentIP}:${AGENT_METRICS_PORT}`;
  // The agent reads the stats files on its refresh period; wait until it has seen the workload's spill.
  const status = await waitFor('the demo container with host spill in the agent /status', 60_000, async () => {
    const s = (await (await fetch(`${base}/status`)).json()) as Json;
    const c = (s.containers ?? []).find((x: Json) => x.owner?.pod === DEMO_POD);
    return c && c.hostUsedBytes > 0 ? s : undefined;
  });
  // The agent writes its EmuvNode's status every few seconds; show it once it has counted the pod.
  await waitFor('the EmuvNode status to count the demo pod', 60_000, async () => {
    const en = await kube.get(`/apis/emuv.io/v1alpha1/emuvnodes/${info.nodeName}`);
    return Number(en.status?.committed ?? 0) > 0 && Number(en.status?.spillInUse ?? 0) > 0 ? true : undefined;
  });
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const top = run(NODE_BIN, [path.join(repoRoot, 'plugin/main.ts'), 'top', '--once', `--url=${base}`]);
  return {
    emuvNodes: must('kubectl get emuvnodes', kubectl(info, ['get', 'emuvnodes', '-o', 'wide'])),
    metrics,
    top: must('emuv top --once', top),
    status,
  };
}

/** `helm uninstall --wait`, after the demo pod is gone (it holds a slot of the agent's GPU). */
export async function uninstallEmuv(info: ClusterInfo, kube: Kube): Promise<string> {
  await kube.json('DELETE', `/api/v1/namespaces/${DEMO_NAMESPACE}/pods/${DEMO_POD}?gracePeriodSeconds=0`).catch(() => undefined);
  const out = must('helm uninstall', helm(info, ['uninstall', RELEASE, '--namespace', NAMESPACE, '--wait', '--timeout', '3m']));
  await waitFor('the emuv pods to be gone', 120_000, async () => {
    const pods = await kube.get(`/api/v1/namespaces/${NAMESPACE}/pods`);
    return (pods.items ?? []).length === 0 ? true : undefined;
  });
  return out;
}

/** Removes the GPU feature discovery label the install step added (not emuv's; the demo put it there). */
export async function unlabelNode(info: ClusterInfo, kube: Kube): Promise<void> {
  await kube.json(
    'PATCH',
    `/api/v1/nodes/${info.nodeName}`,
    { metadata: { labels: { [GPU_NODE_LABEL]: null } } },
    'application/merge-patch+json',
  );
}

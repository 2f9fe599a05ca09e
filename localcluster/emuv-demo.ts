// emuv installed the way an operator installs it, on the local cluster: the image (the Dockerfile built by
// buildah, images/emuv-image.ts) imported into the node's containerd, the Helm chart installed with
// `helm install --wait`, the agent running as the chart's DaemonSet and the operator as its Deployment. The
// node's GPU is gpu-node.ts's: the SIMULATED 8 GiB GeForce, or (`npm run demo` only; the test always
// simulates) this machine's, its libcuda/libnvidia-ml mounted into the workload as the toolkit would.
//
// One ClusterDemo holds the steps in the order they run, and what one step hands the next (the node, the
// agent's address). `npm run demo` (scripts/demo.ts) prints what each returns; test/cluster/delivery-e2e.test.ts
// runs the same steps and asserts it.
import { appendFileSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEVICE_PLUGIN_DIR, NODE_IP, type ClusterInfo } from './cluster/layout.ts';
import { KubeError, type Json, type Kube } from './cluster/kube.ts';
import { capture, must, waitFor } from './cluster/process.ts';
import { helm, importImages, kubectl } from './cluster/tools.ts';
import { prepareGpuNode, SIMULATED_GPU, SIMULATED_VRAM, type GpuNode, type HostDriver } from './gpu-node.ts';
import {
  buildEmuvImage,
  buildWorkloadImage,
  DRIVER_LIB_DIR,
  EMUV_IMAGE,
  EMUV_IMAGE_REPOSITORY,
  EMUV_IMAGE_TAG,
  WORKLOAD_IMAGE,
  type ImageFacts,
} from './images/emuv-image.ts';
import { NODE_BIN, REPO_ROOT } from './repo.ts';

export const RELEASE = 'emuv';
export const NAMESPACE = 'emuv-system';
export const CHART_DIR = path.join(REPO_ROOT, 'helm/emuv');
export const DEMO_NAMESPACE = 'demo';
export const DEMO_POD = 'llm-0';
export const DEMO_LIMIT = '28Gi';
/** The label NVIDIA's GPU feature discovery puts on GPU nodes; the chart's agent nodeSelector. */
export const GPU_NODE_LABEL = 'nvidia.com/gpu.present';
export const AGENT_METRICS_PORT = 9402;

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
        // Used with dra.enabled: the kubelet's DRA directories under its root dir, the node's CDI directory.
        kubeletPluginsDir: info.kubeletPluginsDir,
        kubeletRegistryDir: info.kubeletRegistryDir,
        cdiDir: info.cdiDir,
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
                { name: 'EMUV_SIM_VRAM', value: SIMULATED_VRAM },
                { name: 'EMUV_SIM_PCI_BUS_ID', value: SIMULATED_GPU },
              ],
          volumeMounts: driverMounts.map((m) => ({ name: m.name, mountPath: path.posix.join(DRIVER_LIB_DIR, m.file), readOnly: true })),
          resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { 'emuv.io/vram-virtual': DEMO_LIMIT } },
        },
      ],
      volumes: driverMounts.map((m) => ({ name: m.name, hostPath: { path: realpathSync(m.host), type: 'File' } })),
    },
  };
}

export interface InstallResult {
  helmOutput: string;
  vramVirtualBytes: number;
  agentPod: string;
  agentIP: string;
}

export interface WorkloadResult {
  /** The pod as stored: mutated by the webhook. */
  pod: Json;
  log: string;
}

export interface Observed {
  emuvNodes: string;
  metrics: string;
  top: string;
  status: Json;
}

export interface ClusterDemoOptions {
  /** This machine's driver; null (the default): the simulated GeForce. */
  driver?: HostDriver | null;
  log?: (s: string) => void;
}

/** The demo's steps on one cluster, in order: loadImages, prepareNode, install, runWorkload, observe, uninstall. */
export class ClusterDemo {
  readonly info: ClusterInfo;
  readonly kube: Kube;
  readonly driver: HostDriver | null;
  /** The chart values `install` wrote; a later `helm upgrade` passes the same file. */
  readonly valuesFile: string;
  readonly #log: (s: string) => void;
  #node: GpuNode | undefined;
  #installed: InstallResult | undefined;

  constructor(info: ClusterInfo, kube: Kube, opts: ClusterDemoOptions = {}) {
    this.info = info;
    this.kube = kube;
    this.driver = opts.driver ?? null;
    this.#log = opts.log ?? (() => {});
    this.valuesFile = path.join(info.paths.runDir, 'emuv-values.json');
  }

  /** The node prepareNode laid out. */
  get node(): GpuNode {
    if (!this.#node) throw new Error('prepareNode() has not run');
    return this.#node;
  }

  /**
   * Builds the emuv image (the Dockerfile, with buildah) and the workload image and imports both into the node's
   * containerd. buildah's full output goes to <log dir>/image-build.log; the steps, to the demo's log.
   */
  loadImages(): ImageFacts {
    const dir = path.join(this.info.paths.runDir, 'images');
    mkdirSync(dir, { recursive: true });
    const buildLog = path.join(this.info.paths.logDir, 'image-build.log');
    mkdirSync(this.info.paths.logDir, { recursive: true });
    writeFileSync(buildLog, '');
    this.#log(`buildah bud -t ${EMUV_IMAGE} . (output in ${buildLog})`);
    const image = buildEmuvImage(dir, {
      cacheDir: this.info.paths.cacheDir,
      runDir: this.info.paths.runDir,
      log: (line) => {
        appendFileSync(buildLog, `${line}\n`);
        if (/^\[\d+\/\d+\] STEP|^making base image/.test(line)) this.#log(line);
      },
    });
    this.#log(
      `${EMUV_IMAGE}: ${image.layers} layers, ${(image.sizeBytes / 1e6).toFixed(1)} MB (${(image.compressedBytes / 1e6).toFixed(1)} MB compressed), user ${image.user}, built in ${image.buildSeconds.toFixed(0)} s`,
    );
    importImages(this.info, [image.archive, buildWorkloadImage(dir, this.driver?.libcuda)], [EMUV_IMAGE, WORKLOAD_IMAGE]);
    this.#log(`imported ${EMUV_IMAGE} and ${WORKLOAD_IMAGE} into the node's containerd`);
    return image;
  }

  /** The node's GPU (gpu-node.ts) under the run directory. */
  prepareNode(): GpuNode {
    this.#node = prepareGpuNode(this.info.paths.runDir, this.driver);
    return this.#node;
  }

  /** Labels the node as GPU feature discovery would, `helm install --wait`s the chart, waits for capacity. */
  async install(): Promise<InstallResult> {
    const { info, kube } = this;
    await this.#labelNode('true');
    writeFileSync(this.valuesFile, JSON.stringify(chartValues(info, this.node), null, 2));
    this.#log(`helm install ${RELEASE} helm/emuv --namespace ${NAMESPACE} --create-namespace --values ${this.valuesFile} --wait`);
    const helmOutput = must(
      'helm install',
      helm(info, [
        'install',
        RELEASE,
        CHART_DIR,
        '--namespace',
        NAMESPACE,
        '--create-namespace',
        '--values',
        this.valuesFile,
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
    this.#installed = { helmOutput, vramVirtualBytes: Number(allocatable), agentPod: pod.metadata.name, agentIP: pod.status.podIP };
    return this.#installed;
  }

  /**
   * The 28Gi pod, once the webhook admits it: created, Running, and its log up to "ready". `allocation`: the
   * path the node is on (DevicePlugin, the chart's default; DRA when the EmuvPolicy says so).
   */
  async runWorkload(allocation: 'DevicePlugin' | 'DRA' = 'DevicePlugin'): Promise<WorkloadResult> {
    const kube = this.kube;
    const pod = demoPod(this.node);
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
    // On a DRA node (EmuvPolicy allocation DRA) the webhook turns the limit into a ResourceClaim instead of a slot;
    // the policy reaches the webhook's cache a moment after it changed, so wait for the path asked for.
    const admitted = (p: Json) =>
      allocation === 'DRA'
        ? (p.spec.resourceClaims ?? []).some((c: Json) => String(c.name).startsWith('emuv-'))
        : p.spec.containers[0].resources.limits['emuv.io/vgpu'] === '1';
    await waitFor(`the emuv webhook to admit pods (${allocation})`, 60_000, async () => {
      try {
        const p = await kube.json('POST', `/api/v1/namespaces/${DEMO_NAMESPACE}/pods?dryRun=All`, pod);
        return admitted(p) || undefined;
      } catch (e) {
        if (e instanceof KubeError && e.status >= 500) return undefined;
        throw e;
      }
    });
    await kube.createPod(DEMO_NAMESPACE, pod);
    await kube.waitPodPhase(DEMO_NAMESPACE, DEMO_POD, 'Running', 120_000);
    const log = await waitFor('the workload to report ready', 120_000, async () => {
      const text = await kube.podLog(DEMO_NAMESPACE, DEMO_POD);
      if (/refused|FAILED|unavailable/.test(text) && !text.includes('ready')) throw new Error(`the workload failed:\n${text}`);
      return text.includes('ready\n') ? text : undefined;
    });
    return { pod: await kube.pod(DEMO_NAMESPACE, DEMO_POD), log };
  }

  /** The agent's /metrics and /status address (at its pod IP), once installed. */
  get agentUrl(): string {
    if (!this.#installed) throw new Error('install() has not run');
    return `http://${this.#installed.agentIP}:${AGENT_METRICS_PORT}`;
  }

  /** What an operator looks at: kubectl get emuvnodes, the agent's /metrics and /status, emuv top --once. */
  async observe(): Promise<Observed> {
    const { info, kube } = this;
    const base = this.agentUrl;
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
    const top = capture(NODE_BIN, [path.join(REPO_ROOT, 'plugin/main.ts'), 'top', '--once', `--url=${base}`]);
    return {
      emuvNodes: must('kubectl get emuvnodes', kubectl(info, ['get', 'emuvnodes', '-o', 'wide'])),
      metrics,
      top: must('emuv top --once', top),
      status,
    };
  }

  /** Whether the release is installed (helm status), whichever process installed it. */
  isInstalled(): boolean {
    return helm(this.info, ['status', RELEASE, '--namespace', NAMESPACE]).status === 0;
  }

  /** `helm uninstall --wait`, after the demo pod is gone (it holds a slot of the agent's GPU). */
  async uninstall(): Promise<string> {
    const kube = this.kube;
    await kube.json('DELETE', `/api/v1/namespaces/${DEMO_NAMESPACE}/pods/${DEMO_POD}?gracePeriodSeconds=0`).catch(() => undefined);
    // Gone from the kubelet too (a DRA claim is unprepared by the agent before the pod object goes).
    await waitFor('the demo pod to be gone', 120_000, async () =>
      kube.pod(DEMO_NAMESPACE, DEMO_POD).then(
        () => undefined,
        (e: unknown) => (e instanceof KubeError && e.status === 404 ? true : Promise.reject(e)),
      ),
    );
    const out = must('helm uninstall', helm(this.info, ['uninstall', RELEASE, '--namespace', NAMESPACE, '--wait', '--timeout', '3m']));
    await waitFor('the emuv pods to be gone', 120_000, async () => {
      const pods = await kube.get(`/api/v1/namespaces/${NAMESPACE}/pods`);
      return (pods.items ?? []).length === 0 ? true : undefined;
    });
    this.#installed = undefined;
    return out;
  }

  /** Removes the GPU feature discovery label `install` added (not emuv's; the demo put it there). */
  unlabelNode(): Promise<void> {
    return this.#labelNode(null);
  }

  async #labelNode(value: 'true' | null): Promise<void> {
    await this.kube.json(
      'PATCH',
      `/api/v1/nodes/${this.info.nodeName}`,
      { metadata: { labels: { [GPU_NODE_LABEL]: value } } },
      'application/merge-patch+json',
    );
  }
}

// What `npm run demo` does, asserted. The emuv image (built from the Dockerfile's
// runtime stage) runs as the chart's agent DaemonSet and operator Deployment on the local cluster; a pod
// asking for emuv.io/vram-virtual: 28Gi runs on the simulated 8 GiB GeForce, sees 28 GiB, allocates
// 20 GiB and spills the part that does not fit; the spill shows in /metrics, /status, `emuv top --once`
// and `kubectl get emuvnodes`; `helm uninstall` leaves nothing of emuv on the node or in its status.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRA_DRIVER } from '../../common/contracts/dra.ts';
import { ENV, LIBRARY_FILES } from '../../common/contracts/interposer.ts';
import {
  CHART_DIR,
  ClusterDemo,
  DEMO_NAMESPACE,
  DEMO_POD,
  DEVICE_PLUGIN_DIR,
  helm,
  Kube,
  kubectl,
  must,
  loadCluster,
  NAMESPACE,
  RELEASE,
  waitFor,
  type Json,
  type Observed,
} from '../../localcluster/index.ts';

const GiB = 1024 ** 3;
const VRAM_VIRTUAL = 'emuv.io/vram-virtual';
const VGPU = 'emuv.io/vgpu';
/** demo-geforce: 8 GiB - 512 MiB reserve = 7.5 GiB usable; 48 GiB of RAM -> "auto" spill budget 24 GiB. */
const EXPECTED_VIRTUAL = 7.5 * GiB + 24 * GiB;

describe('emuv installed with its chart: a 28Gi pod on a simulated 8 GiB GeForce, observed, then uninstalled', () => {
  const info = loadCluster();
  const kube = new Kube(info);
  // The steps `npm run demo` runs, on the simulated GPU whatever this machine has.
  const demo = new ClusterDemo(info, kube, { driver: null, log: (s: string) => console.log(`[delivery-e2e] ${s}`) });
  let installed = false;
  let observed: Observed;

  beforeAll(() => {
    demo.loadImages();
    demo.prepareNode();
  }, 300_000);

  afterAll(async () => {
    if (installed && demo.isInstalled()) await demo.uninstall().catch(() => undefined);
    await kube.deleteNamespace(DEMO_NAMESPACE).catch(() => undefined);
    await kube.deleteNamespace(NAMESPACE).catch(() => undefined);
    await demo.unlabelNode().catch(() => undefined);
    kube.close();
  }, 300_000);

  it('helm install: the agent DaemonSet and both operator replicas become ready; the node offers its virtual memory', async () => {
    const result = await demo.install();
    installed = true;
    expect(result.vramVirtualBytes).toBe(EXPECTED_VIRTUAL);
    // helm --wait accepts a DaemonSet with maxUnavailable pods not ready; the agent's readiness comes next.
    await waitFor('the agent pod ready', 60_000, async () => {
      const ds = await kube.get(`/apis/apps/v1/namespaces/${NAMESPACE}/daemonsets/emuv-agent`);
      return ds.status?.numberReady === 1 || undefined;
    });
    const dep = await kube.get(`/apis/apps/v1/namespaces/${NAMESPACE}/deployments/emuv-operator`);
    expect(dep.status.readyReplicas).toBe(2);
    // The agent installed the interposer onto the host, where Allocate mounts it from.
    for (const f of Object.values(LIBRARY_FILES)) expect(existsSync(path.join(demo.node.interposer, 'lib', f)), f).toBe(true);
    // emuv.io/vgpu reaches node status with the kubelet's next status update after registration.
    const n = await waitFor('16 emuv.io/vgpu slots in node status', 60_000, async () => {
      const node = await kube.node();
      return node.status.allocatable[VGPU] === '16' ? node : undefined;
    });
    expect(n.metadata.labels['emuv.io/gpu.count']).toBe('1');
  });

  it('runs the 28Gi pod: mutated by the webhook, scheduled by bytes, sees 28 GiB and allocates 20 GiB', async () => {
    const w = await demo.runWorkload();
    const c = w.pod.spec.containers[0];
    expect(c.resources.limits).toMatchObject({ [VRAM_VIRTUAL]: '28Gi', [VGPU]: '1' });
    expect(c.env).toContainEqual({ name: ENV.limitBytes, value: String(28 * GiB) });
    expect(w.log).toContain('card: cuMemGetInfo total 28.0 GiB free 28.0 GiB; cuDeviceTotalMem 28.0 GiB; NVML total 28.0 GiB');
    expect(w.log).toContain('allocated 20 x 1 GiB through cuMemAlloc');
    expect(w.log).toContain('data check on the last tensor: ok');
    expect(w.log).toContain('card after loading: total 28.0 GiB, free 8.0 GiB');
  });

  it('shows the spill in /status, /metrics, emuv top --once and kubectl get emuvnodes', async () => {
    observed = await demo.observe();
    const c = (observed.status.containers as Json[]).find((x) => x.owner?.pod === DEMO_POD)!;
    expect(c.owner).toMatchObject({ namespace: DEMO_NAMESPACE, pod: DEMO_POD, container: 'main' });
    expect(c.limitBytes).toBe(28 * GiB);
    // VRAM first, up to the share of the 7.5 GiB usable; the rest of the 20 GiB in host RAM.
    expect(c.vramUsedBytes).toBeGreaterThan(5 * GiB);
    expect(c.vramUsedBytes).toBeLessThanOrEqual(7.5 * GiB);
    expect((c.vramUsedBytes + c.hostUsedBytes) / GiB).toBeCloseTo(20, 1);

    const sample = (name: string) => {
      const m = new RegExp(`^${name}\\{namespace="${DEMO_NAMESPACE}",pod="${DEMO_POD}",container="main",gpu="[^"]+"\\} (\\d+)$`, 'm').exec(
        observed.metrics,
      );
      return m ? Number(m[1]) : undefined;
    };
    expect(sample('emuv_container_host_spill_bytes')).toBe(c.hostUsedBytes);
    expect(sample('emuv_container_vram_used_bytes')).toBe(c.vramUsedBytes);
    expect(sample('emuv_container_limit_bytes')).toBe(28 * GiB);

    expect(observed.top).toMatch(new RegExp(`${DEMO_NAMESPACE}/${DEMO_POD}/main +28\\.0G +[0-9.]+G +1[0-9]\\.[0-9]G`));
    // kubectl's columns for EmuvNode (-o wide): NAME GPUS VRAM VIRTUAL COMMITTED SPILL SPILL-BUDGET READY POLICY ALLOCATION AGE.
    const row = observed.emuvNodes
      .split('\n')
      .find((l) => l.startsWith(`${info.nodeName} `))!
      .split(/\s+/);
    // Sizes for people (status.summary), the byte fields stay for programs; -o wide adds the spill budget.
    expect(row.slice(0, 5)).toEqual([info.nodeName, '1', '7.5Gi', '31.5Gi', '28Gi']);
    expect(row[5]).toMatch(/^[1-9][0-9.]*Gi$/);
    expect(row.slice(6, 8)).toEqual(['24Gi', 'SpecApplied']);
    // kubectl describe shows the Ready condition with its reason and message.
    const described = must('kubectl describe emuvnode', kubectl(info, ['describe', 'emuvnode', info.nodeName]));
    expect(described).toMatch(/Reason: +SpecApplied/);
    expect(described).toMatch(/Message: +publishing \d+ bytes of emuv.io\/vram-virtual/);
    expect(observed.emuvNodes.split('\n')[0]).toMatch(
      /^NAME +GPUS +VRAM +VIRTUAL +COMMITTED +SPILL +SPILL BUDGET +READY +POLICY +ALLOCATION +AGE$/,
    );
  });

  it('helm upgrade replaces the agent (a rolling update) without touching what it put on the node', async () => {
    const agentPods = async () =>
      ((await kube.get(`/api/v1/namespaces/${NAMESPACE}/pods?labelSelector=app.kubernetes.io/component%3Dagent`)).items as Json[]).map(
        (p) => p.metadata.name as string,
      );
    const before = await agentPods();
    const r = helm(info, [
      'upgrade',
      RELEASE,
      CHART_DIR,
      '-n',
      NAMESPACE,
      '--values',
      demo.valuesFile,
      '--set',
      'agent.logLevel=debug',
      '--wait',
      '--timeout',
      '3m',
    ]);
    expect(r.status, r.out).toBe(0);
    await waitFor('a new agent pod, ready', 120_000, async () => {
      const ds = await kube.get(`/apis/apps/v1/namespaces/${NAMESPACE}/daemonsets/emuv-agent`);
      const now = await agentPods();
      return now.length === 1 && !before.includes(now[0]!) && ds.status?.numberReady === 1 && ds.status?.updatedNumberScheduled === 1
        ? true
        : undefined;
    });
    // The old agent saw its DaemonSet still there at SIGTERM: node status, files and the running pod stay.
    for (const f of Object.values(LIBRARY_FILES)) expect(existsSync(path.join(demo.node.interposer, 'lib', f)), f).toBe(true);
    const n = await kube.node();
    expect(n.status.allocatable[VRAM_VIRTUAL]).toBe(String(EXPECTED_VIRTUAL));
    expect((await kube.pod(DEMO_NAMESPACE, DEMO_POD)).status.phase).toBe('Running');
    expect(readdirSync(demo.node.state).length).toBe(1);
  });

  it('with DRA on and the EmuvPolicy on DRA, the node publishes a ResourceSlice and the limits-style pod runs on a claim', async () => {
    const r = helm(info, [
      'upgrade',
      RELEASE,
      CHART_DIR,
      '-n',
      NAMESPACE,
      '--values',
      demo.valuesFile,
      '--set',
      'dra.enabled=true',
      '--set',
      'defaultPolicy.spec.allocation=DRA',
      '--wait',
      '--timeout',
      '3m',
    ]);
    expect(r.status, r.out).toBe(0);
    const slice = await waitFor("the node's ResourceSlice", 120_000, async () => {
      const s = await kube.get(
        `/apis/resource.k8s.io/v1/resourceslices?fieldSelector=spec.nodeName%3D${info.nodeName},spec.driver%3D${DRA_DRIVER}`,
      );
      return (s.items as Json[])[0];
    });
    const [device] = slice.spec.devices as Json[];
    expect(device).toMatchObject({ name: 'gpu-0000-01-00-0', allowMultipleAllocations: true, capacity: { memory: { value: '32256Mi' } } });
    // The same pod as before, unchanged: the webhook turns its 28Gi limit into a claim on the DRA node.
    const w = await demo.runWorkload('DRA');
    const c = w.pod.spec.containers[0];
    expect(c.resources.limits?.[VRAM_VIRTUAL]).toBeUndefined();
    expect(c.resources.claims).toEqual([{ name: 'emuv-c0' }]);
    expect(w.pod.spec.resourceClaims).toEqual([{ name: 'emuv-c0', resourceClaimTemplateName: `emuv-vram-${28 * GiB}` }]);
    const claimName = (w.pod.status.resourceClaimStatuses as Json[])[0]!.resourceClaimName;
    const claim = await kube.get(`/apis/resource.k8s.io/v1/namespaces/${DEMO_NAMESPACE}/resourceclaims/${claimName}`);
    expect(claim.status.allocation.devices.results[0]).toMatchObject({ device: 'gpu-0000-01-00-0', consumedCapacity: { memory: '28Gi' } });
    // EMUV_LIMIT_BYTES came with the claim's CDI spec: the card the workload sees is the claim's 28 GiB.
    expect(w.log).toContain('card: cuMemGetInfo total 28.0 GiB free 28.0 GiB; cuDeviceTotalMem 28.0 GiB; NVML total 28.0 GiB');
    expect(w.log).toContain('allocated 20 x 1 GiB through cuMemAlloc');
    expect(w.log).toContain('data check on the last tensor: ok');
    expect(readdirSync(info.cdiDir)).toEqual([`emuv.io-vgpu-${claim.metadata.uid}.json`]);
    // The pool of the device-plugin path is withdrawn while the node is on DRA.
    expect((await kube.node()).status.allocatable[VRAM_VIRTUAL]).toBe('0');
  });

  it('helm uninstall leaves nothing of emuv on the node or in node status', async () => {
    await demo.uninstall();
    installed = false;
    // The kubelet keeps every device-plugin resource it ever registered, at zero (its rule, see docs/agent.md);
    // the agent's empty device list reaches node status with the kubelet's next status update.
    const n = await waitFor('emuv.io/vgpu at zero in node status', 60_000, async () => {
      const node = await kube.node();
      return ['capacity', 'allocatable'].every((f) => (node.status[f][VGPU] ?? '0') === '0') ? node : undefined;
    });
    for (const f of ['capacity', 'allocatable']) expect(n.status[f][VRAM_VIRTUAL], `status.${f}`).toBeUndefined();
    expect(Object.keys(n.metadata.labels ?? {}).filter((k) => k.startsWith('emuv.io/'))).toEqual([]);
    expect(Object.keys(n.metadata.annotations ?? {}).filter((k) => k.startsWith('emuv.io/'))).toEqual([]);
    const emuvNodes = await kube.get('/apis/emuv.io/v1alpha1/emuvnodes');
    expect(emuvNodes.items).toEqual([]);
    expect(readdirSync(demo.node.interposer)).toEqual([]);
    expect(readdirSync(demo.node.state)).toEqual([]);
    expect(readdirSync(DEVICE_PLUGIN_DIR).filter((f) => f.startsWith('emuv'))).toEqual([]);
    // DRA: no slice, no CDI spec, no kubelet plugin sockets.
    const slices = await kube.get(`/apis/resource.k8s.io/v1/resourceslices?fieldSelector=spec.driver%3D${DRA_DRIVER}`);
    expect(slices.items).toEqual([]);
    expect(readdirSync(info.cdiDir)).toEqual([]);
    expect(readdirSync(info.kubeletRegistryDir).filter((f) => f.startsWith(DRA_DRIVER))).toEqual([]);
    const mwc = await kube.get('/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations');
    expect((mwc.items as Json[]).map((x) => x.metadata.name).filter((x) => x.startsWith('emuv'))).toEqual([]);
  });
});

// The agent as a DRA driver against the real kubelet, scheduler and containerd (Kubernetes 1.37, containerd 2.4
// with CDI), on a two-GPU node (the two-gpus-numa fixture: 8 GiB and 16 GiB of VRAM given by flag):
// - the node's ResourceSlice: one shared device per GPU with its virtual memory and attributes; put back after
//   a kubelet restart wiped it;
// - pods with ResourceClaims run, and the claim's CDI spec reached the container (EMUV_LIMIT_BYTES = the bytes
//   the scheduler booked, the GPU's device node, the interposer and stats mounts);
// - packing per GPU: claims land on the GPU that has room, and one that fits no single GPU stays Pending with
//   the scheduler's reason, while the node-wide pool of the device-plugin path admits the same pods;
// - an agent restart keeps its prepared claims; deleting the pods unprepares them to nothing.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CDI_KIND, DEVICE_CLASS, DRA_DRIVER } from '../../common/contracts/dra.ts';
import { CONTAINER_PATHS, ENV } from '../../common/contracts/interposer.ts';
import { Kube, loadCluster, restartKubelet, waitFor, type Json } from '../../localcluster/index.ts';
import { ownersByAllocId } from '../../plugin/usage/owners.ts';
import { podResourcesClient } from '../../plugin/usage/pod-resources.ts';
import { clearNodeResource, draAgentArgs, GiB, MiB, nodeSlices, removeDraObjects, startAgent, type RunningAgent } from './agent.ts';
import { claimPod, claimTemplate, deviceClass, parseProbeLog, probePod } from './pods.ts';

const NS = 'emuv-dra';
const GPU_A = '0000:17:00.0';
const GPU_B = '0000:65:00.0';
const DEV_A = 'gpu-0000-17-00-0';
const DEV_B = 'gpu-0000-65-00-0';
/** 512 MiB reserve per GPU, 8 GiB of host spill split evenly: A offers 11.5 GiB, B 19.5 GiB, the node 31 GiB. */
const MEMORY_A = 8 * GiB - 512 * MiB + 4 * GiB;
const MEMORY_B = 16 * GiB - 512 * MiB + 4 * GiB;
const VRAM_VIRTUAL = 'emuv.io/vram-virtual';
const VGPU = 'emuv.io/vgpu';

describe('agent as a DRA driver: ResourceSlice, claims and CDI with the real kubelet', () => {
  const info = loadCluster();
  const kube = new Kube(info);
  let agent: RunningAgent;
  const agentArgs = [...draAgentArgs(info), '--allocation=DRA'];
  const start = (o: { allocation?: string; keepDir?: boolean } = {}) =>
    startAgent(info, 'dra', {
      fixture: 'two-gpus-numa',
      gpuMemory: [`${GPU_A}=8Gi`, `${GPU_B}=16Gi`],
      devices: ['nvidia0', 'nvidia1', 'nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools'],
      args: [...agentArgs, ...(o.allocation ? [`--allocation=${o.allocation}`] : [])],
      keepDir: o.keepDir,
    });
  const stateDir = () => path.join(agent.dir, 'state');
  const slices = () => nodeSlices(kube, info.nodeName);
  const emuvSpecs = () => readdirSync(info.cdiDir).filter((f) => f.startsWith('emuv.io-vgpu-'));

  const probeOf = async (name: string) =>
    parseProbeLog(
      await waitFor(`complete probe log of ${name}`, 60_000, async () => {
        const text = await kube.podLog(NS, name);
        return parseProbeLog(text).complete ? text : undefined;
      }),
    );
  /** The claim the pod got from its template (named in pod status), with its allocation. */
  const claimOf = async (pod: string): Promise<Json> => {
    const p = await kube.pod(NS, pod);
    const name = (p.status.resourceClaimStatuses as Json[]).find((s) => s.name === 'vram')!.resourceClaimName as string;
    return kube.get(`/apis/resource.k8s.io/v1/namespaces/${NS}/resourceclaims/${name}`);
  };

  beforeAll(async () => {
    await kube.ensureNamespace(NS);
    await kube.json('DELETE', `/apis/resource.k8s.io/v1/deviceclasses/${DEVICE_CLASS}`).catch(() => undefined);
    await kube.json('POST', '/apis/resource.k8s.io/v1/deviceclasses', deviceClass());
    for (const [name, memory] of [
      ['vram-12gi', '12Gi'],
      ['vram-10gi', '10Gi'],
      ['vram-8gi', '8Gi'],
    ] as const)
      await kube.json('POST', `/apis/resource.k8s.io/v1/namespaces/${NS}/resourceclaimtemplates`, claimTemplate(name, memory));
    agent = start();
  }, 120_000);

  afterAll(async () => {
    await kube.deleteNamespace(NS).catch(() => undefined);
    await agent?.stop();
    await removeDraObjects(kube, info.nodeName);
    await clearNodeResource(kube, VRAM_VIRTUAL).catch(() => undefined);
    kube.close();
  }, 180_000);

  it('publishes one ResourceSlice with a shared device per GPU, its virtual memory and attributes, owned by the Node', async () => {
    const [slice, ...more] = await waitFor(`the ResourceSlice (agent log: ${agent.log})`, 60_000, async () => {
      if (agent.child.exitCode !== null) throw new Error(`the agent exited:\n${agent.logText().slice(-2000)}`);
      const s = await slices();
      return s.length > 0 ? s : undefined;
    });
    expect(more).toEqual([]);
    const node = await kube.node();
    expect(slice!.metadata.ownerReferences).toEqual([
      { apiVersion: 'v1', kind: 'Node', name: info.nodeName, uid: node.metadata.uid, controller: true },
    ]);
    expect(slice!.spec.pool).toMatchObject({ name: info.nodeName, resourceSliceCount: 1 });
    const byName = new Map((slice!.spec.devices as Json[]).map((d) => [d.name as string, d]));
    expect([...byName.keys()]).toEqual([DEV_A, DEV_B]);
    const a = byName.get(DEV_A)!;
    const b = byName.get(DEV_B)!;
    // The apiserver kept the shared capacity (DRAConsumableCapacity is on in 1.37) and canonicalised it.
    expect(a.allowMultipleAllocations).toBe(true);
    expect(a.capacity.memory).toEqual({
      value: `${MEMORY_A / MiB}Mi`,
      requestPolicy: { default: `${(8 * GiB - 512 * MiB) / MiB}Mi`, validRange: { min: '1Mi', max: `${MEMORY_A / MiB}Mi`, step: '1Mi' } },
    });
    expect(b.capacity.memory.value).toBe(`${MEMORY_B / MiB}Mi`);
    expect(b.attributes).toMatchObject({
      model: { string: 'NVIDIA H100 PCIe' },
      uuid: { string: 'GPU-0a1b2c3d-0000-4000-8000-000000000065' },
      pciAddress: { string: GPU_B },
      numaNode: { int: 1 },
      vramBytes: { int: 16 * GiB },
      hostSpillBytes: { int: 4 * GiB },
    });
    // The device plugin offers nothing on a DRA node: the same bytes are never offered twice.
    await waitFor('emuv.io/vram-virtual at 0 in node status', 30_000, async () => {
      const n = await kube.node();
      return n.status?.capacity?.[VRAM_VIRTUAL] === '0' ? true : undefined;
    });
  });

  it('runs a pod with a 12Gi claim on the GPU that has room; the CDI edits reached the container', async () => {
    await kube.createPod(NS, claimPod('claim-12', 'vram-12gi', [CONTAINER_PATHS.statsDir]));
    await kube.waitPodPhase(NS, 'claim-12', 'Running');
    const claim = await claimOf('claim-12');
    const [result] = claim.status.allocation.devices.results as Json[];
    // 12 GiB fits only GPU B (A offers 11.5 GiB).
    expect(result).toMatchObject({ driver: DRA_DRIVER, pool: info.nodeName, device: DEV_B, consumedCapacity: { memory: '12Gi' } });
    const p = await probeOf('claim-12');
    expect(p.env.get(ENV.limitBytes)).toBe(String(12 * GiB));
    expect(p.env.get(ENV.gpu)).toBe('GPU-0a1b2c3d-0000-4000-8000-000000000065');
    expect(p.devices.get('/dev/nvidia1')).toBe('c 1:3');
    expect(p.devices.has('/dev/nvidia0')).toBe(false);
    expect(p.mounts.get(CONTAINER_PATHS.statsDir)).toMatch(/^rw,/);
    expect(p.mounts.get(CONTAINER_PATHS.libDir)).toMatch(/^ro,/);
    // The per-claim spec on the node, named by the claim's UID; the stats directory the container writes to.
    const uid = claim.metadata.uid as string;
    expect(emuvSpecs()).toEqual([`emuv.io-vgpu-${uid}.json`]);
    expect(JSON.parse(readFileSync(path.join(info.cdiDir, `emuv.io-vgpu-${uid}.json`), 'utf8')).kind).toBe(CDI_KIND);
    expect(existsSync(path.join(stateDir(), `dra-${uid}-0`))).toBe(true);
    // Usage, /status, metrics and `emuv top` name the claim's pod and container from the kubelet's PodResources,
    // which lists each container's CDI devices (emuv's CDI device name is the stats directory's name).
    const pr = podResourcesClient(info.podResourcesSocket);
    try {
      expect(ownersByAllocId(await pr.list()).get(`dra-${uid}-0`)).toEqual({ namespace: NS, pod: 'claim-12', container: 'probe' });
    } finally {
      pr.close();
    }
  });

  it('packs per GPU: 10Gi lands on A, and 8Gi, which no single GPU can hold any more, stays Pending with the reason', async () => {
    await kube.createPod(NS, claimPod('claim-10', 'vram-10gi'));
    await kube.waitPodPhase(NS, 'claim-10', 'Running');
    expect(((await claimOf('claim-10')).status.allocation.devices.results as Json[])[0]!.device).toBe(DEV_A);
    // Left: A 1.5 GiB, B 7.5 GiB. The node as a whole still has 9 GiB.
    await kube.createPod(NS, claimPod('claim-8', 'vram-8gi'));
    const reason = await waitFor('the scheduler to give up on claim-8', 60_000, async () => {
      const c = ((await kube.pod(NS, 'claim-8')).status.conditions as Json[] | undefined)?.find((x) => x.type === 'PodScheduled');
      return c?.status === 'False' && c.reason === 'Unschedulable' ? (c.message as string) : undefined;
    });
    console.log(`[dra] claim-8 unschedulable: ${reason}`);
    expect(reason).toMatch(/cannot allocate all claims/);
    expect((await kube.pod(NS, 'claim-8')).status.phase).toBe('Pending');
  });

  it('puts the ResourceSlice back within seconds after a kubelet restart wiped it; running pods keep their claims', async () => {
    const before = (await slices())[0]!;
    const t0 = Date.now();
    await restartKubelet(info, kube);
    const back = await waitFor('the ResourceSlice back after the kubelet restart', 60_000, async () => {
      const s = await slices();
      return s.length === 1 && s[0]!.metadata.uid !== before.metadata.uid ? s[0] : undefined;
    });
    console.log(`[dra] ResourceSlice back ${Date.now() - t0} ms after the kubelet restart began (node Ready included)`);
    expect(back!.spec.pool.generation).toBeGreaterThan(before.spec.pool.generation);
    expect((back!.spec.devices as Json[]).map((d) => d.name)).toEqual([DEV_A, DEV_B]);
    expect((await kube.pod(NS, 'claim-12')).status.phase).toBe('Running');
  });

  it('keeps its prepared claims across an agent restart, and unprepares them to nothing when the pods go', async () => {
    await agent.stop();
    agent = start({ keepDir: true });
    await waitFor('the restarted agent to serve DRA', 60_000, () => {
      if (agent.child.exitCode !== null) throw new Error(`the agent exited:\n${agent.logText().slice(-2000)}`);
      return agent.logText().split('===== ').at(-1)!.includes('DRA serving') ? true : undefined;
    });
    expect(agent.logText().split('===== ').at(-1)).toMatch(/"preparedClaims":2/);
    const uids = [(await claimOf('claim-12')).metadata.uid, (await claimOf('claim-10')).metadata.uid];
    for (const pod of ['claim-12', 'claim-10', 'claim-8'])
      await kube.json('DELETE', `/api/v1/namespaces/${NS}/pods/${pod}`).catch(() => undefined);
    await waitFor('every claim unprepared', 90_000, async () => (emuvSpecs().length === 0 ? true : undefined));
    for (const uid of uids) expect(existsSync(path.join(stateDir(), `dra-${uid}-0`))).toBe(false);
    const checkpoint = JSON.parse(readFileSync(path.join(stateDir(), 'dra-checkpoint.json'), 'utf8'));
    expect(checkpoint).toEqual({ version: 1, claims: {} });
  });

  it('side by side: the device-plugin path books the node-wide pool, and admits the same three pods', async () => {
    await agent.stop();
    agent = start({ allocation: 'DevicePlugin', keepDir: true });
    // The slice goes when the node leaves DRA; the pool comes back into node status.
    await waitFor('the ResourceSlice removed', 60_000, async () => ((await slices()).length === 0 ? true : undefined));
    await waitFor('emuv.io/vram-virtual back in node status', 60_000, async () => {
      const n = await kube.node();
      return Number(n.status?.allocatable?.[VRAM_VIRTUAL] ?? 0) === MEMORY_A + MEMORY_B && Number(n.status?.allocatable?.[VGPU] ?? 0) > 0
        ? true
        : undefined;
    });
    for (const [name, size] of [
      ['pool-12', 12],
      ['pool-10', 10],
      ['pool-8', 8],
    ] as const) {
      await kube.createPod(NS, probePod({ name, limits: { [VRAM_VIRTUAL]: `${size}Gi`, [VGPU]: '1' } }));
      await kube.waitPodPhase(NS, name, 'Running');
    }
    // All three run: 30 GiB fit the 31 GiB pool, though after 12 and 10 no GPU has 8 GiB left. DRA refused the
    // third pod above; the node-wide pool cannot tell which GPU has room.
    const phases = await Promise.all(['pool-12', 'pool-10', 'pool-8'].map(async (n) => (await kube.pod(NS, n)).status.phase));
    expect(phases).toEqual(['Running', 'Running', 'Running']);
  });
});

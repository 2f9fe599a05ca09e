// The agent's device plugin against the real kubelet.
// - it registers emuv.io/vgpu and the Node shows the slots;
// - a pod asking for emuv.io/vgpu: 1 runs and its log shows what Allocate injected (EMUV_* env, the
//   interposer mounts, the GPU device nodes);
// - after a kubelet restart the plugin registers again and the next pod still gets its slot.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTAINER_PATHS, CONTRACT_VERSION, ENV, LIBRARY_FILES } from '../../common/contracts/interposer.ts';
import { Kube, loadCluster, restartKubelet, waitFor, type Json } from '../../localcluster/index.ts';
import { AGENT_CAPACITY, clearNodeResource, FIXTURE_DEVICES, startAgent, type RunningAgent } from './agent.ts';
import { parseProbeLog, probePod } from './pods.ts';

const NS = 'emuv-vgpu';
const VGPU = 'emuv.io/vgpu';

describe('agent device plugin: emuv.io/vgpu with the real kubelet', () => {
  const info = loadCluster();
  const kube = new Kube(info);
  let agent: RunningAgent;

  const runProbe = async (name: string) => {
    await kube.createPod(NS, probePod({ name, limits: { [VGPU]: '1' }, list: [CONTAINER_PATHS.libDir] }));
    await kube.waitPodPhase(NS, name, 'Running');
    const log = await waitFor(`complete probe log of ${name}`, 30_000, async () => {
      const text = await kube.podLog(NS, name);
      return parseProbeLog(text).complete ? text : undefined;
    });
    return parseProbeLog(log);
  };

  const expectInjected = (p: ReturnType<typeof parseProbeLog>) => {
    expect(p.env.get(ENV.contractVersion)).toBe(String(CONTRACT_VERSION));
    expect(p.env.get(ENV.gpu)).toMatch(/^GPU-[0-9a-f-]+$/);
    expect(Number(p.env.get(ENV.vramShare))).toBeGreaterThan(0);
    for (const d of FIXTURE_DEVICES) expect(p.devices.get(`/dev/${d}`)).toBe('c 1:3');
    expect(p.mounts.get(CONTAINER_PATHS.libDir)).toMatch(/^ro,/);
    expect(p.mounts.get(CONTAINER_PATHS.preloadFile)).toMatch(/^ro,/);
    expect(p.mounts.get(CONTAINER_PATHS.statsDir)).toMatch(/^rw,/);
    for (const f of Object.values(LIBRARY_FILES)) expect(p.listed).toContain(`${CONTAINER_PATHS.libDir}/${f}`);
  };

  // The kubelet's own record of the plugin: each registration whose first ListAndWatch reported all slots
  // healthy. The Node object alone can lag (status is posted every 10 s) and may still show an earlier
  // agent's slots, so admission-sensitive steps wait for this, then for a status posted after it.
  const kubeletLog = path.join(info.paths.logDir, 'kubelet.log');
  const healthyRegistrations = () =>
    readFileSync(kubeletLog, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"Processed device updates for resource"') && l.includes(`resourceName="${VGPU}"`))
      .filter((l) => l.includes(`healthyCount=${AGENT_CAPACITY.slots}`)).length;
  let registeredBefore = 0;

  const waitServed = async (before: number) => {
    await waitFor(`the kubelet to take ${VGPU} from the plugin (agent log: ${agent.log})`, 60_000, () =>
      healthyRegistrations() > before ? true : undefined,
    );
    const since = Math.ceil(Date.now() / 1000) * 1000; // status timestamps have second granularity
    return await waitFor(`a node status posted after the registration, with ${VGPU}`, 60_000, async () => {
      const n = await kube.node();
      const beat = (n.status?.conditions ?? []).find((c: Json) => c.type === 'Ready')?.lastHeartbeatTime;
      if (!beat || Date.parse(beat) < since) return undefined;
      return { capacity: Number(n.status?.capacity?.[VGPU] ?? 0), allocatable: Number(n.status?.allocatable?.[VGPU] ?? 0) };
    });
  };

  beforeAll(async () => {
    await kube.ensureNamespace(NS);
    registeredBefore = healthyRegistrations();
    agent = startAgent(info, 'device-plugin');
  });

  afterAll(async () => {
    await kube.deleteNamespace(NS).catch(() => undefined);
    await agent?.stop();
    await clearNodeResource(kube, 'emuv.io/vram-virtual').catch(() => undefined);
    kube.close();
  });

  it('registers with the kubelet and the node shows emuv.io/vgpu slots', async () => {
    const v = await waitServed(registeredBefore);
    expect(v).toEqual({ capacity: AGENT_CAPACITY.slots, allocatable: AGENT_CAPACITY.slots });
  });

  it('runs a pod asking for emuv.io/vgpu: 1 with the env, mounts and devices Allocate injected', async () => {
    const p = await runProbe('vgpu-1');
    expectInjected(p);
    // A pod without the resource gets none of it (the injection comes from Allocate, not from the image).
    await kube.createPod(NS, probePod({ name: 'plain' }));
    await kube.waitPodPhase(NS, 'plain', 'Running');
    const plain = parseProbeLog(
      await waitFor('plain probe log', 30_000, async () => {
        const t = await kube.podLog(NS, 'plain');
        return parseProbeLog(t).complete ? t : undefined;
      }),
    );
    expect([...plain.env.keys()].filter((k) => k.startsWith('EMUV_'))).toEqual([]);
    expect(plain.devices.has('/dev/nvidia0')).toBe(false);
    expect(plain.mounts.has(CONTAINER_PATHS.libDir)).toBe(false);
  });

  it('registers again after a kubelet restart, and the next pod still gets its slot', async () => {
    const before = healthyRegistrations();
    await restartKubelet(info, kube);
    const v = await waitServed(before);
    expect(v).toEqual({ capacity: AGENT_CAPACITY.slots, allocatable: AGENT_CAPACITY.slots });
    // The pod admitted before the restart keeps running; the next one is allocated by the new registration.
    expect((await kube.pod(NS, 'vgpu-1')).status.phase).toBe('Running');
    const p = await runProbe('vgpu-2');
    expectInjected(p);
  });
});

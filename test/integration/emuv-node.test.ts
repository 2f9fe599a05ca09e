/**
 * The agent's side of EmuvNode, over HTTP against a stand-in apiserver: the operator's spec is applied
 * live (slots re-streamed to the kubelet, capacity re-published), status is written, a spec the
 * agent cannot parse is refused in status while the configuration in effect stays.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nopLogger } from '../../common/log.ts';
import { startAgent, type AgentHandle } from '../../plugin/agent/agent.ts';
import { createEmuvNodeApi, createNodeApi, loadKubeConfig } from '../../plugin/agent/kube-node-api.ts';
import { parsePluginConfig } from '../../plugin/config.ts';
import { AgentApiServer } from '../fakes/agent-apiserver.ts';
import { StandInKubelet } from '../../localcluster/stand-in-kubelet.ts';
import { copyNodeFixture, tempDir } from '../../localcluster/repo.ts';
import { agentFlags, waitUntil } from '../helpers.ts';

const GiB = 2 ** 30;
let tmp: ReturnType<typeof tempDir>;
let api: AgentApiServer;
let kubelet: StandInKubelet;
let agent: AgentHandle | null;

const spec = (over: Record<string, unknown> = {}) => ({
  hostSpillBudget: '8Gi',
  vramReservePerGpu: '1Gi',
  slotsPerGpu: 4,
  vramMode: 'Fixed',
  spillBackend: 'Auto',
  policy: 'workstations',
  ...over,
});

async function start() {
  const roots = copyNodeFixture('one-gpu', join(tmp.path, 'node'));
  const dp = join(tmp.path, 'dp');
  mkdirSync(dp);
  kubelet = new StandInKubelet(dp);
  await kubelet.start();
  const kubeconfig = join(tmp.path, 'kubeconfig');
  api.writeKubeconfig(kubeconfig);
  const cfg = parsePluginConfig(
    agentFlags(
      roots,
      tmp.path,
      dp,
      '--node-status=on',
      '--node-name=gpu-node-1',
      `--kubeconfig=${kubeconfig}`,
      '--gpu-memory=0000:01:00.0=8Gi',
    ),
    {},
  );
  const kc = loadKubeConfig(kubeconfig);
  agent = await startAgent(cfg, {
    logger: nopLogger,
    nvml: null,
    nodeApi: createNodeApi(kc),
    emuvNodeApi: createEmuvNodeApi(kc),
    nodeStatusResyncMs: 50,
  });
}

beforeEach(async () => {
  tmp = tempDir();
  api = new AgentApiServer('gpu-node-1');
  await api.start();
  agent = null;
});

afterEach(async () => {
  await agent?.stop();
  await kubelet?.stop();
  await api.stop();
  tmp.cleanup();
});

const capacity = () => api.node.status?.capacity?.['emuv.io/vram-virtual'];
type Cond = { type: string; status: string; reason: string; message: string; observedGeneration?: number };
const ready = () => (api.emuvNode?.status?.conditions as Cond[] | undefined)?.find((c) => c.type === 'Ready');

describe('EmuvNode on the agent', () => {
  it('applies the spec at start: slots, VRAM mode, spill backend, reserve and spill budget; and writes status', async () => {
    api.emuvNode = {
      apiVersion: 'emuv.io/v1alpha1',
      kind: 'EmuvNode',
      metadata: { name: 'gpu-node-1', generation: 3 },
      spec: spec({ spillBackend: 'Managed' }),
    };
    await start();
    await kubelet.waitFor(() => kubelet.devices.length === 4, 3000, '4 slots');
    expect(capacity()).toBe(String(7 * GiB + 8 * GiB));
    const res = await kubelet.allocate([['gpu-0000-01-00-0-s01']]);
    expect(res.container_responses[0]!.envs).toMatchObject({
      EMUV_VRAM_MODE: 'fixed',
      EMUV_VRAM_SHARE: String((7 * GiB) / 4),
      EMUV_SPILL_BACKEND: 'managed',
    });
    await waitUntil(() => ready()?.status === 'True', 3000, 'status written');
    expect(api.emuvNode!.status).toMatchObject({
      observedGeneration: 3,
      gpuCount: 1,
      gpus: [
        {
          index: 0,
          pciAddress: '0000:01:00.0',
          model: 'NVIDIA GeForce RTX 4060',
          vram: String(8 * GiB),
          numaNode: -1,
          link: { generation: 4, width: 8 },
        },
      ],
      capacity: { vram: String(7 * GiB), spillBudget: String(8 * GiB), virtual: String(15 * GiB), slots: 4 },
      committed: '0',
      spillInUse: '0',
    });
    expect(ready()).toMatchObject({ reason: 'SpecApplied', observedGeneration: 3 });
    const statusPatches = api.requests.filter((r) => r.method === 'PATCH' && r.path.includes('emuvnodes'));
    expect(statusPatches.every((r) => r.path.endsWith('/status') && r.contentType === 'application/merge-patch+json')).toBe(true);
  });

  it('follows spec changes live, refuses an invalid spec in status, and falls back to its flags without an EmuvNode', async () => {
    await start(); // no EmuvNode yet: flags (16 slots, 512Mi reserve, auto spill)
    expect(kubelet.devices).toHaveLength(16);
    api.emuvNode = {
      apiVersion: 'emuv.io/v1alpha1',
      kind: 'EmuvNode',
      metadata: { name: 'gpu-node-1', generation: 1 },
      spec: spec({ slotsPerGpu: 8, spillBackend: 'Pinned' }),
    };
    await kubelet.waitFor(() => kubelet.devices.length === 8, 3000, '8 slots after the operator wrote the spec');
    await waitUntil(() => capacity() === String(15 * GiB), 3000, 'capacity re-published');
    const envs = async () => (await kubelet.allocate([['gpu-0000-01-00-0-s01']])).container_responses[0]!.envs;
    expect((await envs()).EMUV_SPILL_BACKEND).toBe('pinned');

    api.emuvNode.spec = spec({ slotsPerGpu: 0 });
    api.emuvNode.metadata.generation = 2;
    await waitUntil(() => ready()?.status === 'False', 3000, 'invalid spec reported');
    expect(ready()!.reason).toBe('InvalidSpec');
    expect(ready()!.message).toContain('slotsPerGpu: expected an integer from 1 to 128, got 0');
    expect(kubelet.devices).toHaveLength(8); // the configuration in effect stays

    api.emuvNode = null;
    await kubelet.waitFor(() => kubelet.devices.length === 16, 3000, 'back to the flags');
    await waitUntil(() => capacity() === String(7.5 * GiB + 16 * GiB), 3000, 'flag capacity re-published');
    expect((await envs()).EMUV_SPILL_BACKEND).toBe('auto');
  });
});

// The agent's node-status publisher against the real kubelet and kube-apiserver.
// - it sets emuv.io/vram-virtual (capacity and allocatable) on the real Node;
// - the value survives the kubelet's own status updates;
// - after a kubelet restart that registers the Node anew, the value comes back (the time it took is printed;
//   the agent's resync interval, 5 s, is what bounds it, and a wait bound here would be a timing assertion).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Kube,
  KubeError,
  loadCluster,
  sleep,
  startDaemon,
  stopDaemon,
  waitFor,
  waitNodeReady,
  type Json,
} from '../../localcluster/index.ts';
import { clearNodeResource, EXPECTED_VRAM_VIRTUAL, startAgent, type RunningAgent } from './agent.ts';

const RESOURCE = 'emuv.io/vram-virtual';

describe('agent node status: emuv.io/vram-virtual on the real Node', () => {
  const info = loadCluster();
  const kube = new Kube(info);
  let agent: RunningAgent;

  const published = async () => {
    const n = await kube.node();
    return { capacity: n.status?.capacity?.[RESOURCE], allocatable: n.status?.allocatable?.[RESOURCE], node: n };
  };

  beforeAll(async () => {
    await clearNodeResource(kube, RESOURCE);
    agent = startAgent(info, 'node-status');
  });

  afterAll(async () => {
    await agent?.stop();
    await clearNodeResource(kube, RESOURCE).catch(() => undefined);
    kube.close();
  });

  it('publishes the capacity the flags imply, in capacity and allocatable', async () => {
    const p = await waitFor(`${RESOURCE} on node ${info.nodeName} (agent log: ${agent.log})`, 60_000, async () => {
      const v = await published();
      return v.capacity !== undefined && v.allocatable !== undefined ? v : undefined;
    });
    expect(Number(p.capacity)).toBe(EXPECTED_VRAM_VIRTUAL);
    expect(Number(p.allocatable)).toBe(EXPECTED_VRAM_VIRTUAL);
  });

  it('survives the kubelet status updates', async () => {
    const readyHeartbeat = (n: Json) => (n.status.conditions ?? []).find((c: Json) => c.type === 'Ready')?.lastHeartbeatTime;
    const first = await published();
    const beat0 = readyHeartbeat(first.node);
    const seen = new Set<string>();
    let heartbeats = 0;
    let lastBeat = beat0;
    // nodeStatusUpdateFrequency is 10 s: watch across at least two kubelet status writes.
    const until = Date.now() + 60_000;
    while (Date.now() < until && heartbeats < 2) {
      await sleep(1_000);
      const v = await published();
      seen.add(`${v.capacity}/${v.allocatable}`);
      const beat = readyHeartbeat(v.node);
      if (beat !== lastBeat) {
        heartbeats += 1;
        lastBeat = beat;
      }
    }
    expect(heartbeats).toBeGreaterThanOrEqual(2);
    expect([...seen]).toEqual([`${EXPECTED_VRAM_VIRTUAL}/${EXPECTED_VRAM_VIRTUAL}`]);
  });

  it('is back after a kubelet restart that registers the Node anew', async () => {
    await stopDaemon(info, 'kubelet');
    // A Node registered from scratch carries only what the kubelet itself reports.
    const oldUid = (await kube.node()).metadata.uid;
    await kube.json('DELETE', `/api/v1/nodes/${info.nodeName}`);
    startDaemon(info, 'kubelet');
    const created = await waitFor(
      'the kubelet to register the node again',
      60_000,
      async () => {
        try {
          const n = await kube.node();
          return n.metadata.uid !== oldUid ? { at: Date.now(), node: n } : undefined;
        } catch (e) {
          if (e instanceof KubeError && e.status === 404) return undefined;
          throw e;
        }
      },
      100,
    );
    const back = await waitFor(
      `${RESOURCE} back on the new Node`,
      30_000,
      async () => {
        const v = await published();
        return Number(v.capacity) === EXPECTED_VRAM_VIRTUAL && Number(v.allocatable) === EXPECTED_VRAM_VIRTUAL ? Date.now() : undefined;
      },
      100,
    );
    const seconds = (back - created.at) / 1000;
    console.log(`${RESOURCE} back ${seconds.toFixed(2)} s after the node was registered again`);
    await waitNodeReady(info, kube);
  });
});

import { describe, expect, it } from 'vitest';
import { streamDocs } from './stream-fixture.ts';
import { clusterSource, type AgentPod, type AgentPodsApi } from './cluster-source.ts';

/** A cluster of agent pods whose /status answers are the recorded document with the node's name in it. */
function fakeCluster(initial: AgentPod[]) {
  const doc = streamDocs()[0]!;
  const state = {
    pods: initial,
    lists: 0,
    gets: [] as string[],
    answer: (pod: string, node: string) => JSON.stringify({ ...doc, node: `${node}@${pod}` }),
  };
  const api: AgentPodsApi = {
    server: 'https://10.0.0.1:6443',
    listAgentPods: async (ns) => {
      state.lists += 1;
      expect(ns).toBe('emuv-system');
      return state.pods.map((p) => ({ ...p }));
    },
    proxyGet: async (ns, pod, port, path) => {
      state.gets.push(`${ns}/${pod}:${port}/${path}`);
      const p = state.pods.find((x) => x.name === pod);
      if (!p) throw new Error(`pods "${pod}" not found`);
      return state.answer(pod, p.node);
    },
  };
  return { api, state };
}

const pod = (name: string, node: string, ready = true): AgentPod => ({ name, node, port: 9402, ready });

describe('emuv top --agents-namespace', () => {
  it('shows the first node by name, through the pod proxy of its ready agent; [ ] move and wrap around', async () => {
    const { api, state } = fakeCluster([pod('emuv-agent-b', 'gpu-b'), pod('emuv-agent-a1', 'gpu-a', false), pod('emuv-agent-a2', 'gpu-a')]);
    const src = clusterSource(api, 'emuv-system');
    expect(src.describe).toBe('agents in emuv-system via https://10.0.0.1:6443');
    expect((await src.fetch()).node).toBe('gpu-a@emuv-agent-a2');
    expect(state.gets).toEqual(['emuv-system/emuv-agent-a2:9402/status']);
    expect(src.describe).toBe('node gpu-a (1/2, [ ] other nodes): pod emuv-system/emuv-agent-a2 via https://10.0.0.1:6443');
    src.pick!(1);
    expect((await src.fetch()).node).toBe('gpu-b@emuv-agent-b');
    src.pick!(1);
    expect((await src.fetch()).node).toBe('gpu-a@emuv-agent-a2');
    src.pick!(-1);
    expect((await src.fetch()).node).toBe('gpu-b@emuv-agent-b');
    src.pick!(-3);
    expect((await src.fetch()).node).toBe('gpu-a@emuv-agent-a2');
  });

  it('lists the pods again after relistMs and after a failed fetch, and keeps to the node it shows', async () => {
    let t = 0;
    const { api, state } = fakeCluster([pod('emuv-agent-b', 'gpu-b')]);
    const src = clusterSource(api, 'emuv-system', { relistMs: 10_000, now: () => t });
    await src.fetch();
    t = 5_000;
    await src.fetch();
    expect(state.lists).toBe(1);
    // A node joins before the one shown: after the next list the same node is shown, now 2 of 2.
    state.pods = [pod('emuv-agent-a', 'gpu-a'), pod('emuv-agent-b', 'gpu-b')];
    t = 10_000;
    expect((await src.fetch()).node).toBe('gpu-b@emuv-agent-b');
    expect(state.lists).toBe(2);
    expect(src.describe).toMatch(/^node gpu-b \(2\/2/);
    // The agent restarts under another name: the GET fails, and the next fetch lists again and finds it.
    state.pods = [pod('emuv-agent-a', 'gpu-a'), pod('emuv-agent-b2', 'gpu-b')];
    await expect(src.fetch()).rejects.toThrow(/pods "emuv-agent-b" not found/);
    expect((await src.fetch()).node).toBe('gpu-b@emuv-agent-b2');
    expect(state.lists).toBe(3);
  });

  it('says what is wrong: no agent pods in the namespace, an answer that is not a status document', async () => {
    const { api, state } = fakeCluster([]);
    const src = clusterSource(api, 'emuv-system');
    await expect(src.fetch()).rejects.toThrow(/no emuv agent pods in namespace emuv-system \(is the chart installed there\?/);
    state.pods = [pod('emuv-agent-a', 'gpu-a')];
    state.answer = () => '<html>502 Bad Gateway</html>';
    await expect(src.fetch()).rejects.toThrow(/agent emuv-system\/emuv-agent-a on gpu-a did not answer JSON/);
    state.answer = () => JSON.stringify({ apiVersion: 'emuv.io/status/v0' });
    await expect(src.fetch()).rejects.toThrow(/is not an emuv\.io\/status\/v1 document \(got "emuv\.io\/status\/v0"\)/);
  });
});

/**
 * `emuv plugin` as a process, SIGTERM'd the way the kubelet stops it: with its DaemonSet gone (helm
 * uninstall) it removes everything it put on the node; with its DaemonSet still there (rolling update,
 * drain) it leaves everything. Against the stand-in kubelet (real gRPC) and the stand-in apiserver
 * (through the real @kubernetes/client-node).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { memoryLogger } from '../../common/log.ts';
import { startAgent } from '../../plugin/agent/agent.ts';
import { createEmuvNodeApi, createNodeApi, createUninstallApi, loadKubeConfig } from '../../plugin/agent/kube-node-api.ts';
import { parsePluginConfig } from '../../plugin/config.ts';
import { AgentApiServer } from '../fakes/agent-apiserver.ts';
import { StandInKubelet } from '../../localcluster/stand-in-kubelet.ts';
import { copyNodeFixture, NODE_BIN, REPO_ROOT, tempDir } from '../../localcluster/repo.ts';
import { agentFlags, waitUntil } from '../helpers.ts';

const MAIN = join(REPO_ROOT, 'plugin', 'main.ts');
const OWNER = 'emuv-system/emuv-agent';

let tmp: ReturnType<typeof tempDir>;
let api: AgentApiServer;
let kubelet: StandInKubelet;
let child: ChildProcess | null;
let output: string;

beforeEach(async () => {
  tmp = tempDir();
  api = new AgentApiServer('gpu-node-1');
  await api.start();
  api.daemonSets.set(OWNER, { metadata: { name: 'emuv-agent', namespace: 'emuv-system' } });
  api.emuvNode = {
    apiVersion: 'emuv.io/v1alpha1',
    kind: 'EmuvNode',
    metadata: { name: 'gpu-node-1', generation: 1 },
    spec: { hostSpillBudget: '8Gi', vramReservePerGpu: '1Gi', slotsPerGpu: 4, vramMode: 'Fill', spillBackend: 'Auto' },
  };
  child = null;
  output = '';
});

afterEach(async () => {
  child?.kill('SIGKILL');
  await kubelet?.stop();
  await api.stop();
  tmp.cleanup();
});

const paths = () => ({
  interposer: join(tmp.path, 'interposer'),
  state: join(tmp.path, 'state'),
  socket: join(tmp.path, 'dp', 'emuv-vgpu.sock'),
});

/** Starts the agent with node status and --owner-daemonset, waits until it has put everything in place. */
async function spawnAgent() {
  const roots = copyNodeFixture('one-gpu', join(tmp.path, 'node'));
  const dp = join(tmp.path, 'dp');
  mkdirSync(dp);
  kubelet = new StandInKubelet(dp);
  await kubelet.start();
  const libs = join(tmp.path, 'libs');
  mkdirSync(libs);
  writeFileSync(join(libs, 'libemuv-cuda.so'), 'cuda shim');
  writeFileSync(join(libs, 'libemuv-nvml.so'), 'nvml shim');
  const kubeconfig = join(tmp.path, 'kubeconfig');
  api.writeKubeconfig(kubeconfig);
  const flags = agentFlags(
    roots,
    tmp.path,
    dp,
    '--node-status=on',
    '--node-name=gpu-node-1',
    `--kubeconfig=${kubeconfig}`,
    '--gpu-memory=0000:01:00.0=8Gi',
    `--interposer-source=${libs}`,
    `--owner-daemonset=${OWNER}`,
  );
  const proc = spawn(NODE_BIN, [MAIN, 'plugin', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (output += d.toString()));

  // Signals are handled once it says so (before, SIGTERM kills it as any process).
  await waitUntil(() => output.includes('"msg":"running"'), 15_000, `the agent running (output: ${output})`);
  await kubelet.waitFor(() => kubelet.devices.length === 4, 5000, `registration with the EmuvNode's 4 slots (output: ${output})`);
  await waitUntil(() => api.node.metadata.labels['emuv.io/gpu.count'] === '1', 5000, 'labels published');
  expect(api.node.status?.capacity?.['emuv.io/vram-virtual']).toBe(String(7 * 2 ** 30 + 8 * 2 ** 30));
  // A container was given a slot (its stats directory) and the interposer is installed.
  const res = await kubelet.allocate([['gpu-0000-01-00-0-s02']]);
  const statsDir = res.container_responses[0]!.mounts.find((m) => m.container_path === '/run/emuv')!.host_path;
  writeFileSync(join(statsDir, 'stats.bin'), 'what the interposer writes');
  const p = paths();
  expect(readdirSync(join(p.interposer, 'lib')).length).toBe(4);
  expect(existsSync(join(p.interposer, 'ld.so.preload'))).toBe(true);
  expect(existsSync(p.socket)).toBe(true);
  return { statsDir };
}

async function sigterm(): Promise<{ code: number | null; msgs: string[] }> {
  const proc = child!;
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  proc.kill('SIGTERM');
  const code = await exited;
  const msgs = output
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { msg: string }).msg);
  return { code, msgs };
}

describe('SIGTERM with the agent DaemonSet gone (helm uninstall)', () => {
  it('removes node status, labels, its EmuvNode, the interposer files and stats directories; the kubelet sees no devices', async () => {
    const { statsDir } = await spawnAgent();
    api.daemonSets.delete(OWNER); // helm uninstall deleted it; the garbage collector now deletes the pods
    const { code, msgs } = await sigterm();
    expect(code, output).toBe(0);
    expect(msgs).toEqual(
      expect.arrayContaining(['emuv is being uninstalled: removing what the agent put on this node', 'uninstall cleanup done']),
    );

    // 1. The kubelet was told "no devices" before the stream ended, and the socket is gone.
    const conn = kubelet.current!;
    expect(conn.updates.at(-1)).toEqual([]);
    expect(conn.updates.some((u) => u.length === 4)).toBe(true);
    expect(conn.streamEnded).toBe(true);
    expect(existsSync(paths().socket)).toBe(false);
    // 2. Node status and labels: emuv's keys gone, the rest untouched.
    expect(api.node.status).toEqual({ capacity: { cpu: '8', memory: '32Gi' }, allocatable: { cpu: '8', memory: '31Gi' } });
    expect(api.node.metadata.labels).toEqual({ 'kubernetes.io/hostname': 'gpu-node-1' });
    // 3. Its EmuvNode.
    expect(api.emuvNode).toBeNull();
    // 4. Files: the mount points stay, empty.
    const p = paths();
    expect(readdirSync(p.interposer)).toEqual([]);
    expect(existsSync(statsDir)).toBe(false);
    expect(readdirSync(p.state)).toEqual([]);
  });
});

describe('SIGTERM with the agent DaemonSet still there (rolling update, drain, eviction)', () => {
  it('leaves everything in place for the next agent', async () => {
    const { statsDir } = await spawnAgent();
    const before = { status: structuredClone(api.node.status), labels: { ...api.node.metadata.labels } };
    const { code, msgs } = await sigterm();
    expect(code, output).toBe(0);
    expect(msgs).toContain('owner DaemonSet exists (rolling update, drain or eviction): leaving the node as it is');
    expect(msgs).not.toContain('emuv is being uninstalled: removing what the agent put on this node');

    expect(kubelet.current!.updates.every((u) => u.length === 4)).toBe(true);
    expect(existsSync(paths().socket)).toBe(false); // as on every stop
    expect(api.node.status).toEqual(before.status);
    expect(api.node.metadata.labels).toEqual(before.labels);
    expect(api.emuvNode).not.toBeNull();
    expect(api.requests.some((r) => r.method === 'DELETE')).toBe(false);
    const p = paths();
    expect(readdirSync(join(p.interposer, 'lib')).sort()).toEqual([
      'libemuv-cuda.so',
      'libemuv-nvml.so',
      'libemuv-real-cuda.so',
      'libemuv-real-nvml.so',
    ]);
    expect(existsSync(join(p.interposer, 'ld.so.preload'))).toBe(true);
    expect(existsSync(join(statsDir, 'stats.bin'))).toBe(true);
  });
});

describe('when the cleanup stays off', () => {
  /** The agent in-process, with the same wiring as main.ts. */
  async function inProcess(...extra: string[]) {
    const roots = copyNodeFixture('one-gpu', join(tmp.path, 'node'));
    const dp = join(tmp.path, 'dp');
    mkdirSync(dp);
    kubelet = new StandInKubelet(dp);
    await kubelet.start();
    const kubeconfig = join(tmp.path, 'kubeconfig');
    api.writeKubeconfig(kubeconfig);
    const cfg = parsePluginConfig(
      agentFlags(roots, tmp.path, dp, '--node-name=gpu-node-1', `--kubeconfig=${kubeconfig}`, '--gpu-memory=0000:01:00.0=8Gi', ...extra),
      {},
    );
    const kc = loadKubeConfig(kubeconfig);
    const log = memoryLogger();
    const agent = await startAgent(cfg, {
      logger: log,
      nvml: null,
      nodeApi: createNodeApi(kc),
      emuvNodeApi: createEmuvNodeApi(kc),
      uninstallApi: createUninstallApi(kc, 2000),
    });
    await kubelet.waitFor(() => kubelet.devices.length > 0, 5000, 'registration');
    await kubelet.allocate([['gpu-0000-01-00-0-s01']]);
    return { agent, log };
  }

  it('--owner-daemonset naming no DaemonSet at start: an error, and a later 404 is not taken for an uninstall', async () => {
    api.daemonSets.clear();
    const { agent, log } = await inProcess('--node-status=on', '--owner-daemonset=emuv-sytem/emuv-agent');
    expect(log.entries).toContainEqual(
      expect.objectContaining({
        level: 'error',
        msg: '--owner-daemonset names no DaemonSet: uninstall cleanup is off until the flag is fixed',
        fields: expect.objectContaining({ daemonSet: 'emuv-sytem/emuv-agent' }),
      }),
    );
    const asked = api.requests.length;
    await agent.terminate();
    expect(api.requests.slice(asked).some((r) => r.path.includes('daemonsets'))).toBe(false);
    expect(api.node.status?.capacity).toHaveProperty('emuv.io/vram-virtual');
    expect(api.emuvNode).not.toBeNull();
    expect(readdirSync(paths().state)).toEqual(['gpu-0000-01-00-0-s01']);
  });

  it('node status off: no API to ask, so nothing is removed', async () => {
    const { agent, log } = await inProcess('--node-status=off', `--owner-daemonset=${OWNER}`);
    await agent.terminate();
    expect(log.entries.map((e) => e.msg)).toContain(
      'no uninstall cleanup: with --node-status=off nothing can tell an uninstall from a restart, so nothing is removed',
    );
    expect(api.requests).toEqual([]);
    expect(kubelet.current!.updates.every((u) => u.length === 16)).toBe(true);
    expect(readdirSync(paths().state)).toEqual(['gpu-0000-01-00-0-s01']);
  });
});

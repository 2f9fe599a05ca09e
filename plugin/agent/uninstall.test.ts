/**
 * The uninstall decision and each cleanup step: the API calls over HTTP against the stand-in apiserver
 * (test/fakes/agent-apiserver.ts) through the real @kubernetes/client-node layer, the file steps on temp
 * directories.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { existsSync, lstatSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { memoryLogger, nopLogger } from '../../common/log.ts';
import { AgentApiServer } from '../../test/fakes/agent-apiserver.ts';
import { tempDir } from '../../localcluster/repo.ts';
import { allocIdFor, isAllocId } from '../deviceplugin/allocate.ts';
import { DeviceState } from '../deviceplugin/device-state.ts';
import { DEFAULT_CAPACITY_CONFIG, GiB } from '../inventory/capacity.ts';
import { buildInventory } from '../inventory/inventory.ts';
import { installInterposer } from './interposer-install.ts';
import { createUninstallApi } from './kube-node-api.ts';
import {
  armUninstall,
  decideOnStop,
  deleteOwnEmuvNode,
  removeInterposerFiles,
  removeNodeStatus,
  removeStatsDirectories,
  runUninstallSteps,
  uninstallLabelPatch,
  uninstallOnStop,
  uninstallStatusPatch,
  withdrawDevicePlugin,
  type UninstallApi,
} from './uninstall.ts';

// What the agent publishes for the one-gpu fixture: 8 GiB less the 512 MiB reserve, plus the auto spill
// budget min(50 % of 32 GiB, 32 GiB - 8 GiB) = 16 GiB.
const VRAM_VIRTUAL = String(8 * 2 ** 30 - 512 * 2 ** 20 + 16 * 2 ** 30);

const OWNER = { namespace: 'emuv-system', name: 'emuv-agent' };
const DS_PATH = '/apis/apps/v1/namespaces/emuv-system/daemonsets/emuv-agent';

let api: AgentApiServer;
let tmp: ReturnType<typeof tempDir>;

beforeEach(async () => {
  api = new AgentApiServer('gpu-node-1');
  await api.start();
  tmp = tempDir();
});
afterEach(async () => {
  await api.stop();
  tmp.cleanup();
});

function client(timeoutMs = 2000): UninstallApi {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${api.port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'c', cluster: 'fake', user: 'u' }],
    currentContext: 'c',
  });
  return createUninstallApi(kc, timeoutMs);
}

/** The Node as the agent leaves it while running: its resource in status, its two labels. */
function publishedNode() {
  api.node.status = {
    capacity: { cpu: '8', memory: '32Gi', 'emuv.io/vgpu': '16', 'emuv.io/vram-virtual': VRAM_VIRTUAL },
    allocatable: { cpu: '8', memory: '31Gi', 'emuv.io/vgpu': '16', 'emuv.io/vram-virtual': VRAM_VIRTUAL },
  };
  api.node.metadata.labels['emuv.io/gpu.count'] = '1';
  api.node.metadata.labels['emuv.io/gpu.product'] = 'NVIDIA-GeForce-RTX-4060';
  api.node.metadata.labels['team'] = 'ml';
}

describe('decideOnStop: is this SIGTERM an uninstall?', () => {
  it('the DaemonSet is gone (404): uninstall', async () => {
    expect(await decideOnStop(client(), OWNER, 3000)).toEqual({ uninstall: true, reason: 'daemonset-gone' });
    expect(api.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET ${DS_PATH}`]);
  });

  it('the DaemonSet is being deleted (deletionTimestamp): uninstall', async () => {
    api.daemonSets.set('emuv-system/emuv-agent', {
      metadata: { name: 'emuv-agent', namespace: 'emuv-system', deletionTimestamp: '2026-01-01T00:00:00Z' },
    });
    expect(await decideOnStop(client(), OWNER, 3000)).toEqual({ uninstall: true, reason: 'daemonset-deleting' });
  });

  it('the DaemonSet exists (rolling update, drain, eviction): keep everything', async () => {
    api.daemonSets.set('emuv-system/emuv-agent', { metadata: { name: 'emuv-agent', namespace: 'emuv-system' } });
    // Another namespace's DaemonSet of the same name is not ours: only the one named is asked about.
    expect(await decideOnStop(client(), OWNER, 3000)).toEqual({ uninstall: false, reason: 'daemonset-exists' });
    expect(await decideOnStop(client(), { namespace: 'other', name: 'emuv-agent' }, 3000)).toMatchObject({ uninstall: true });
  });

  it('the API answers with an error: keep everything, and say why', async () => {
    api.failNext = 1;
    const d = await decideOnStop(client(), OWNER, 3000);
    expect(d).toMatchObject({ uninstall: false, reason: 'api-error' });
    expect(d.uninstall === false && d.reason === 'api-error' && d.error).toContain('503');
  });

  it('the API does not answer: the request is aborted after its timeout, everything is kept', async () => {
    api.daemonSets.clear(); // a 404 would mean uninstall: the hang must not turn into one
    api.stall = (method, path) => method === 'GET' && path.startsWith(DS_PATH);
    const d = await decideOnStop(client(200), OWNER, 5000);
    expect(d).toMatchObject({ uninstall: false, reason: 'api-error' });
    // The request's own 200 ms timeout ended it (the client's abort), not the 5 s decision timeout.
    expect(d).toEqual({ uninstall: false, reason: 'api-error', error: 'The operation was aborted due to timeout' });
  });

  it('an API layer that never settles is given up at the decision timeout', async () => {
    const never: Pick<UninstallApi, 'getDaemonSet'> = { getDaemonSet: () => new Promise(() => {}) };
    const t0 = Date.now();
    const d = await decideOnStop(never, OWNER, 150);
    expect(d).toEqual({
      uninstall: false,
      reason: 'api-error',
      error: 'GET daemonset emuv-system/emuv-agent: no answer within 150 ms',
    });
    // A lower bound only (a timer never fires early): it waited for the timeout rather than giving up at once.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
  });
});

describe('step 1: the device plugin offers nothing, then stops', () => {
  const inventory = buildInventory(
    {
      gpus: [
        {
          pci: {
            address: '0000:01:00.0',
            vendorId: 0x10de,
            deviceId: null,
            subsystemVendorId: null,
            subsystemDeviceId: null,
            classCode: 0x030000,
            numaNode: -1,
            driver: 'nvidia',
            link: { speed: null, gtPerSec: null, width: null, bandwidthBytesPerSec: null },
          },
          uuid: null,
          name: 'GPU',
          minor: 0,
          vramBytes: 8 * GiB,
          vramSource: 'flag',
          driverInfoSource: null,
          offered: true,
          reason: null,
        },
      ],
      hostMemoryBytes: 32 * GiB,
      driverVersion: null,
      nvml: false,
      problems: [],
    },
    { ...DEFAULT_CAPACITY_CONFIG, slotsPerGpu: 4 },
  );

  it('withdraw() streams an empty list, and no later change brings devices back', () => {
    const state = new DeviceState(inventory);
    const seen: number[] = [];
    state.subscribe(() => seen.push(state.devices.length));
    expect(state.devices).toHaveLength(4);
    state.withdraw();
    state.setInventory(inventory); // an EmuvNode change arriving late
    state.setHealth(new Map([['0000:01:00.0', { healthy: false, reason: 'gone' }]]));
    expect(seen).toEqual([0, 0, 0]);
    expect(state.devices).toEqual([]);
  });

  it('the empty list goes out first, the server stops after the flush pause', async () => {
    const events: [string, number][] = [];
    const t0 = Date.now();
    await withdrawDevicePlugin(
      {
        withdraw: () => events.push(['withdraw', Date.now() - t0]),
        stop: async () => void events.push(['stop', Date.now() - t0]),
      },
      100,
    );
    expect(events.map(([e]) => e)).toEqual(['withdraw', 'stop']);
    // A lower bound only: the server must not stop before the kubelet had the flush pause to read the list.
    expect(events[1]![1] - events[0]![1]).toBeGreaterThanOrEqual(95);
  });
});

describe('step 2: node status and labels', () => {
  it('removes emuv.io/vram-virtual and the two labels, and nothing else', async () => {
    publishedNode();
    expect(await removeNodeStatus(client(), 'gpu-node-1')).toEqual({ statusKeysRemoved: 2, labelsRemoved: 2 });
    expect(api.node.status).toEqual({
      // emuv.io/vgpu is the kubelet's (it keeps a removed device-plugin resource at 0): not ours to remove.
      capacity: { cpu: '8', memory: '32Gi', 'emuv.io/vgpu': '16' },
      allocatable: { cpu: '8', memory: '31Gi', 'emuv.io/vgpu': '16' },
    });
    expect(api.node.metadata.labels).toEqual({ 'kubernetes.io/hostname': 'gpu-node-1', team: 'ml' });
    const patches = api.requests.filter((r) => r.method === 'PATCH');
    expect(patches.map((r) => [r.path, r.contentType])).toEqual([
      ['/api/v1/nodes/gpu-node-1/status', 'application/json-patch+json'],
      ['/api/v1/nodes/gpu-node-1', 'application/json-patch+json'],
    ]);
    expect(patches.flatMap((r) => r.body!).every((op) => op.op === 'remove')).toBe(true);
  });

  it('patches only the keys that are there (a remove of a missing member would fail the whole patch)', async () => {
    publishedNode();
    delete api.node.status!.allocatable!['emuv.io/vram-virtual'];
    delete api.node.metadata.labels['emuv.io/gpu.product'];
    expect(await removeNodeStatus(client(), 'gpu-node-1')).toEqual({ statusKeysRemoved: 1, labelsRemoved: 1 });
    expect(api.node.status!.capacity).not.toHaveProperty('emuv.io/vram-virtual');
    expect(api.node.metadata.labels).not.toHaveProperty('emuv.io/gpu.count');
    expect(uninstallStatusPatch(api.node)).toEqual([]);
    expect(uninstallLabelPatch(api.node)).toEqual([]);
  });

  it('sends no patch when nothing of emuv is on the Node', async () => {
    expect(await removeNodeStatus(client(), 'gpu-node-1')).toEqual({ statusKeysRemoved: 0, labelsRemoved: 0 });
    expect(api.requests.map((r) => r.method)).toEqual(['GET']);
  });

  it('still removes the labels when the status patch fails, and reports the failure', async () => {
    publishedNode();
    const real = client();
    const broken: UninstallApi = { ...real, patchNodeStatus: () => Promise.reject(new Error('forbidden')) };
    await expect(removeNodeStatus(broken, 'gpu-node-1')).rejects.toThrow('status: forbidden');
    expect(api.node.metadata.labels).not.toHaveProperty('emuv.io/gpu.count');
    expect(api.node.status!.capacity).toHaveProperty('emuv.io/vram-virtual');
  });

  it('escapes the slash of the keys in the JSON pointers', () => {
    publishedNode();
    expect(uninstallStatusPatch(api.node)).toEqual([
      { op: 'remove', path: '/status/capacity/emuv.io~1vram-virtual' },
      { op: 'remove', path: '/status/allocatable/emuv.io~1vram-virtual' },
    ]);
    expect(uninstallLabelPatch(api.node)).toEqual([
      { op: 'remove', path: '/metadata/labels/emuv.io~1gpu.count' },
      { op: 'remove', path: '/metadata/labels/emuv.io~1gpu.product' },
    ]);
  });
});

describe('step 3: the EmuvNode', () => {
  it('deletes the agent own EmuvNode', async () => {
    api.emuvNode = { apiVersion: 'emuv.io/v1alpha1', kind: 'EmuvNode', metadata: { name: 'gpu-node-1', generation: 1 }, spec: {} };
    expect(await deleteOwnEmuvNode(client(), 'gpu-node-1')).toEqual({ deleted: true });
    expect(api.emuvNode).toBeNull();
    expect(api.requests.map((r) => `${r.method} ${r.path.split('?')[0]}`)).toEqual(['DELETE /apis/emuv.io/v1alpha1/emuvnodes/gpu-node-1']);
  });

  it('is content when there is none (404)', async () => {
    expect(await deleteOwnEmuvNode(client(), 'gpu-node-1')).toEqual({ deleted: false });
  });

  it('fails on any other answer', async () => {
    api.emuvNode = { apiVersion: 'emuv.io/v1alpha1', kind: 'EmuvNode', metadata: { name: 'gpu-node-1', generation: 1 }, spec: {} };
    api.failNext = 1;
    await expect(deleteOwnEmuvNode(client(), 'gpu-node-1')).rejects.toThrow(/503/);
    expect(api.emuvNode).not.toBeNull();
  });
});

describe('step 4: files on the node', () => {
  function install() {
    const libs = join(tmp.path, 'libs');
    mkdirSync(libs);
    writeFileSync(join(libs, 'libemuv-cuda.so'), 'cuda shim');
    writeFileSync(join(libs, 'libemuv-nvml.so'), 'nvml shim');
    const dir = join(tmp.path, 'interposer');
    mkdirSync(dir);
    const r = installInterposer({ sourceDir: libs, targetDir: dir, driverLibDir: '/nonexistent/lib' });
    expect(r.install).not.toBeNull();
    return dir;
  }

  it('removes the interposer files it installed and lib/, not the interposer directory', () => {
    const dir = install();
    writeFileSync(join(dir, 'lib', 'libemuv-cuda.so.tmp-4242'), 'half a copy'); // an install cut short
    expect(readdirSync(join(dir, 'lib')).sort()).toEqual([
      'libemuv-cuda.so',
      'libemuv-cuda.so.tmp-4242',
      'libemuv-nvml.so',
      'libemuv-real-cuda.so',
      'libemuv-real-nvml.so',
    ]);
    expect(removeInterposerFiles(dir)).toEqual({ removed: 6, libDirRemoved: true });
    expect(existsSync(dir)).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('removes the links themselves, never their targets, and keeps files it did not install', () => {
    const dir = install();
    const target = join(tmp.path, 'libcuda.so.1');
    writeFileSync(target, 'the real driver');
    symlinkSync(target, join(dir, 'lib', 'libemuv-real-cuda.so.tmp-1'));
    writeFileSync(join(dir, 'lib', 'notes.txt'), 'someone else');
    writeFileSync(join(dir, 'README'), 'someone else');
    expect(removeInterposerFiles(dir)).toEqual({ removed: 6, libDirRemoved: false });
    expect(readdirSync(join(dir, 'lib'))).toEqual(['notes.txt']);
    expect(readdirSync(dir).sort()).toEqual(['README', 'lib']);
    expect(existsSync(target)).toBe(true);
  });

  it('does nothing where nothing was installed', () => {
    expect(removeInterposerFiles(join(tmp.path, 'never'))).toEqual({ removed: 0, libDirRemoved: false });
  });

  it('removes the per-allocation stats directories, not the state directory nor what is not ours', () => {
    const state = join(tmp.path, 'state');
    const single = allocIdFor(['gpu-0000-01-00-0-s03']);
    const multi = allocIdFor(['gpu-0000-01-00-0-s01', 'gpu-0000-01-00-0-s00']);
    for (const id of [single, multi]) {
      mkdirSync(join(state, id), { recursive: true, mode: 0o1777 });
      writeFileSync(join(state, id, 'stats.bin'), 'stats');
    }
    mkdirSync(join(state, 'lost+found'));
    writeFileSync(join(state, 'gpu-0000-02-00-0-s00'), 'a file, not a stats directory');
    expect(removeStatsDirectories(state)).toEqual({ removed: 2, kept: 2 });
    expect(readdirSync(state).sort()).toEqual(['gpu-0000-02-00-0-s00', 'lost+found']);
    expect(lstatSync(state).isDirectory()).toBe(true);
  });

  it('tells allocation directories by name', () => {
    expect(isAllocId(allocIdFor(['gpu-0000-01-00-0-s03']))).toBe(true);
    expect(isAllocId(allocIdFor(['gpu-0000-af-1f-7-s127', 'gpu-0000-af-1f-7-s100']))).toBe(true);
    for (const name of ['lost+found', 'gpu-0000-01-00-0-s03.old', 'gpu-0000-01-00-0', '..', 'GPU-0000-01-00-0-s03'])
      expect(isAllocId(name), name).toBe(false);
  });

  it('has nothing to do without a state directory', () => {
    expect(removeStatsDirectories(join(tmp.path, 'none'))).toEqual({ removed: 0 });
  });
});

describe('runUninstallSteps', () => {
  it('runs every step in order; a failure is logged and the next step still runs', async () => {
    const ran: string[] = [];
    const log = memoryLogger();
    const outcomes = await runUninstallSteps(
      [
        { name: 'a', run: () => (ran.push('a'), { n: 1 }) },
        {
          name: 'b',
          run: async () => {
            ran.push('b');
            throw new Error('no access');
          },
        },
        { name: 'c', local: true, run: () => (ran.push('c'), {}) },
      ],
      { deadline: Date.now() + 5000, logger: log },
    );
    expect(ran).toEqual(['a', 'b', 'c']);
    expect(outcomes).toEqual([
      { step: 'a', outcome: 'done', detail: { n: 1 } },
      { step: 'b', outcome: 'failed', error: 'no access' },
      { step: 'c', outcome: 'done', detail: {} },
    ]);
    expect(log.entries.map((e) => [e.level, e.msg, e.fields.step])).toEqual([
      ['info', 'uninstall step done', 'a'],
      ['warn', 'uninstall step failed', 'b'],
      ['info', 'uninstall step done', 'c'],
    ]);
  });

  it('gives up a network step at the deadline, skips the next, and still runs the local ones', async () => {
    const ran: string[] = [];
    const outcomes = await runUninstallSteps(
      [
        { name: 'hangs', run: () => new Promise(() => {}) },
        { name: 'network', run: () => (ran.push('network'), {}) },
        { name: 'files', local: true, run: () => (ran.push('files'), {}) },
      ],
      { deadline: Date.now() + 150, logger: nopLogger },
    );
    // That it returns at all (the hanging step never settles) is the point; how soon is the deadline's.
    expect(outcomes.map((o) => [o.step, o.outcome])).toEqual([
      ['hangs', 'failed'],
      ['network', 'skipped'],
      ['files', 'done'],
    ]);
    expect(ran).toEqual(['files']);
  });
});

describe('the agent’s part: armed at start, run at SIGTERM', () => {
  /** An UninstallApi in memory: the DaemonSet as given, every other call recorded. */
  function memoryApi(ds: () => Promise<{ metadata?: { deletionTimestamp?: string } } | null>) {
    const calls: string[] = [];
    const api: UninstallApi = {
      getDaemonSet: () => ds(),
      getNode: async () => ({ status: { capacity: { 'emuv.io/vram-virtual': '1' } }, metadata: { labels: {} } }),
      patchNodeStatus: async () => void calls.push('patch status'),
      patchNode: async () => void calls.push('patch labels'),
      deleteEmuvNode: async () => (calls.push('delete EmuvNode'), true),
    };
    return { api, calls };
  }

  it('armUninstall: off without --owner-daemonset, or with node status off (said), or when the DaemonSet does not exist (an error)', async () => {
    const { api } = memoryApi(async () => null);
    const log = memoryLogger();
    expect(await armUninstall({ owner: null, nodeStatus: true, api, timeoutMs: 100, logger: log })).toBeNull();
    expect(await armUninstall({ owner: OWNER, nodeStatus: false, api: undefined, timeoutMs: 100, logger: log })).toBeNull();
    expect(log.entries.at(-1)).toMatchObject({ level: 'info', msg: expect.stringContaining('no uninstall cleanup') });
    expect(await armUninstall({ owner: OWNER, nodeStatus: true, api, timeoutMs: 100, logger: log })).toBeNull();
    expect(log.entries.at(-1)).toMatchObject({ level: 'error', fields: { daemonSet: 'emuv-system/emuv-agent' } });
    await expect(armUninstall({ owner: OWNER, nodeStatus: true, api: undefined, timeoutMs: 100, logger: log })).rejects.toThrow(
      '--owner-daemonset is set but no Kubernetes API for it was given',
    );
  });

  it('armUninstall: armed when the DaemonSet exists, and when the API cannot say now (asked again at SIGTERM)', async () => {
    const log = memoryLogger();
    expect(
      await armUninstall({ owner: OWNER, nodeStatus: true, api: memoryApi(async () => ({})).api, timeoutMs: 100, logger: log }),
    ).not.toBeNull();
    const failing = memoryApi(async () => {
      throw new Error('403 forbidden');
    });
    expect(await armUninstall({ owner: OWNER, nodeStatus: true, api: failing.api, timeoutMs: 100, logger: log })).toMatchObject({
      owner: OWNER,
    });
    expect(log.entries.at(-1)).toMatchObject({ level: 'warn', msg: 'cannot read the owner DaemonSet now; it is asked again at SIGTERM' });
  });

  function stopOptions(order: string[]) {
    return {
      haltLoops: async () => void order.push('halt loops'),
      plugin: { withdraw: () => void order.push('withdraw'), stop: async () => void order.push('plugin stop') },
      nodeName: 'gpu-node-1',
      interposerDir: join(tmp.path, 'interposer'),
      stateDir: join(tmp.path, 'state'),
      ownerCheckTimeoutMs: 100,
      deadlineMs: 5000,
      flushMs: 0,
      logger: memoryLogger(),
    };
  }

  it('uninstallOnStop with the DaemonSet being deleted: the loops halt first, then every step runs', async () => {
    const order: string[] = [];
    const { api, calls } = memoryApi(async () => ({ metadata: { deletionTimestamp: '2026-01-01T00:00:00Z' } }));
    const o = stopOptions(order);
    await uninstallOnStop({ api, owner: OWNER }, o);
    expect(order).toEqual(['halt loops', 'withdraw', 'plugin stop']);
    expect(calls).toEqual(['patch status', 'delete EmuvNode']);
    expect(o.logger.entries.at(-1)).toMatchObject({ msg: 'uninstall cleanup done' });
  });

  it('uninstallOnStop with the DaemonSet there, or no answer: nothing is touched, and the log says why', async () => {
    for (const [ds, msg] of [
      [async () => ({}), 'owner DaemonSet exists (rolling update, drain or eviction): leaving the node as it is'],
      [() => new Promise<never>(() => {}), 'cannot tell whether emuv is being uninstalled: leaving the node as it is'],
    ] as const) {
      const order: string[] = [];
      const { api, calls } = memoryApi(ds);
      const o = stopOptions(order);
      await uninstallOnStop({ api, owner: OWNER }, o);
      expect(order).toEqual([]);
      expect(calls).toEqual([]);
      expect(o.logger.entries.at(-1)).toMatchObject({ msg });
    }
  });
});

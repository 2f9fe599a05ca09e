// The DRA driver's pure parts and its host side: the slice built from the inventory, a claim's allocation
// turned into a CDI spec, the checkpoint, prepare/unprepare on a temp directory, and the slice sync against an
// in-memory apiserver that canonicalises quantities and wipes slices as the kubelet does.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CDI_KIND, DRA_DRIVER } from '../../common/contracts/dra.ts';
import { ENV } from '../../common/contracts/interposer.ts';
import { formatBytes, parseQuantity } from '../../common/kube/quantity.ts';
import { memoryLogger, nopLogger } from '../../common/log.ts';
import { statsDirPreparer } from '../deviceplugin/host-prep.ts';
import type { NodeDiscovery } from '../discovery/types.ts';
import { discoveredGpu } from '../../test/fixtures/gpus.ts';
import { DEFAULT_CAPACITY_CONFIG, GiB } from '../inventory/capacity.ts';
import { buildInventory } from '../inventory/inventory.ts';
import { ClaimCheckpoint, formatCheckpoint, parseCheckpoint } from './checkpoint.ts';
import { cdiSpec, cdiSpecFile, ClaimError, preparedClaim } from './claim.ts';
import { EmuvDraDriver } from './driver.ts';
import { desiredDevices, deviceName, driverSemver, droppedFields, normalizeDevices, sliceDevice, spillPerGpu } from './slice.ts';
import { SliceSync, type SliceApi, type SliceView } from './slice-sync.ts';

const MiB = 1024 ** 2;
const NODE = 'node-a';
const UID = '0b5c3f1e-1111-4222-8333-944445555666';

const gpu = (address: string, vramGiB: number, minor: number) => discoveredGpu(address, { vramGiB, minor, numaNode: 1 });

const discovery: NodeDiscovery = {
  gpus: [gpu('0000:01:00.0', 8, 0), gpu('0000:02:00.0', 16, 1)],
  hostMemoryBytes: 64 * GiB,
  driverVersion: '580.95.05',
  nvml: false,
  problems: [],
};
// 512 MiB reserve per GPU; 24 GiB host spill split over two GPUs.
const inventory = buildInventory(discovery, { ...DEFAULT_CAPACITY_CONFIG, hostBudget: { kind: 'bytes', bytes: 24 * GiB } });
const env = {
  existingDevNodes: new Set(['nvidiactl', 'nvidia-uvm', 'nvidia0', 'nvidia1']),
  hostDevDir: '/dev',
  interposer: null,
  stateDir: '/run/emuv',
};

function claim(over: { uid?: string; device?: string; pool?: string; consumed?: unknown; results?: unknown[] } = {}) {
  return {
    metadata: { name: 'c1', namespace: 'ns', uid: over.uid ?? UID },
    status: {
      allocation: {
        devices: {
          results: over.results ?? [
            {
              request: 'vram',
              driver: DRA_DRIVER,
              pool: over.pool ?? NODE,
              device: over.device ?? 'gpu-0000-02-00-0',
              shareID: '6f1e2d3c-0000-4000-8000-000000000abc',
              consumedCapacity: { memory: over.consumed ?? '28Gi' },
            },
          ],
        },
      },
      reservedFor: [{ resource: 'pods', name: 'trainer-0', uid: 'p1' }],
    },
  };
}
const REF = { namespace: 'ns', name: 'c1', uid: UID };

describe('the ResourceSlice built from the inventory', () => {
  it('offers one shared device per GPU with virtual memory = usable VRAM + an even part of the spill budget', () => {
    expect(spillPerGpu(inventory)).toBe(12 * GiB);
    const devices = desiredDevices({ nodeName: NODE, inventory, discovery, unhealthy: new Set() });
    expect(devices.map((d) => d.name)).toEqual(['gpu-0000-01-00-0', 'gpu-0000-02-00-0']);
    const big = devices[1]!;
    expect(big.allowMultipleAllocations).toBe(true);
    expect(big.capacity.memory).toEqual({
      value: formatBytes(BigInt(16 * GiB - 512 * MiB + 12 * GiB)),
      requestPolicy: { default: formatBytes(BigInt(16 * GiB - 512 * MiB)), validRange: { min: '1Mi', max: '28160Mi', step: '1Mi' } },
    });
    expect(big.attributes).toMatchObject({
      model: { string: 'NVIDIA GeForce RTX 4060' },
      uuid: { string: 'GPU-aaaaaaaa-0000-4000-8000-000000000001' },
      pciAddress: { string: '0000:02:00.0' },
      numaNode: { int: 1 },
      vramBytes: { int: 16 * GiB },
      hostSpillBytes: { int: 12 * GiB },
      pcieBandwidthBytesPerSec: { int: 31_507_692_308 },
      driverVersion: { version: '580.95.5' },
    });
  });

  it('leaves unhealthy GPUs out, so nothing new is placed on them', () => {
    const devices = desiredDevices({ nodeName: NODE, inventory, discovery, unhealthy: new Set(['0000:01:00.0']) });
    expect(devices.map((d) => d.name)).toEqual(['gpu-0000-02-00-0']);
  });

  it('writes driver versions as semver, or not at all', () => {
    expect(driverSemver('580.95.05')).toBe('580.95.5');
    expect(driverSemver('550.54')).toBe('550.54.0');
    expect(driverSemver('rc-1')).toBeNull();
  });

  it('compares devices by value: the apiserver canonicalises quantities', () => {
    const d = sliceDevice(inventory.gpus[0]!, spillPerGpu(inventory), discovery);
    const stored = structuredClone(d) as unknown as { capacity: { memory: { value: string } } };
    stored.capacity.memory.value = String(parseQuantity(d.capacity.memory!.value).num);
    expect(normalizeDevices([stored])).toBe(normalizeDevices([d]));
    stored.capacity.memory.value = '1Gi';
    expect(normalizeDevices([stored])).not.toBe(normalizeDevices([d]));
  });

  it('tells when the apiserver dropped allowMultipleAllocations (DRAConsumableCapacity off)', () => {
    const d = sliceDevice(inventory.gpus[0]!, 0, discovery);
    expect(droppedFields([d], [d])).toBeNull();
    expect(droppedFields([d], [{ ...d, allowMultipleAllocations: undefined }])).toMatch(/DRAConsumableCapacity/);
  });
});

describe("a claim's allocation, checked and turned into a CDI spec", () => {
  it('gives the container the consumed bytes as EMUV_LIMIT_BYTES, and what Allocate gives on the device-plugin path', () => {
    const p = preparedClaim(claim(), REF, NODE, inventory);
    expect(p.devices).toEqual([
      {
        request: 'vram',
        pool: NODE,
        device: 'gpu-0000-02-00-0',
        shareId: '6f1e2d3c-0000-4000-8000-000000000abc',
        gpuAddress: '0000:02:00.0',
        limitBytes: 28 * GiB,
        allocId: `dra-${UID}-0`,
        cdiDevice: `${CDI_KIND}=dra-${UID}-0`,
      },
    ]);
    expect(p.pods).toEqual(['trainer-0']);
    const spec = cdiSpec(p, inventory, env);
    expect(spec).toMatchObject({ cdiVersion: '0.5.0', kind: 'gpu.emuv.io/vgpu' });
    // Nothing newer than 0.5.0 (annotations are 0.6.0): containerd drops a spec that uses more than its version.
    expect(Object.keys(spec).sort()).toEqual(['cdiVersion', 'devices', 'kind']);
    expect(Object.keys(spec.devices[0]!).sort()).toEqual(['containerEdits', 'name']);
    expect(Object.keys(spec.devices[0]!.containerEdits).sort()).toEqual(['deviceNodes', 'env', 'mounts']);
    const edits = spec.devices[0]!.containerEdits;
    expect(spec.devices[0]!.name).toBe(`dra-${UID}-0`);
    expect(edits.env).toContain(`${ENV.limitBytes}=${28 * GiB}`);
    expect(edits.env).toContain(`${ENV.gpu}=GPU-aaaaaaaa-0000-4000-8000-000000000001`);
    expect(edits.env).toContain('NVIDIA_VISIBLE_DEVICES=GPU-aaaaaaaa-0000-4000-8000-000000000001');
    expect(edits.deviceNodes.map((n) => n.path)).toEqual(['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia1']);
    expect(edits.mounts).toContainEqual({
      hostPath: `/run/emuv/dra-${UID}-0`,
      containerPath: '/run/emuv',
      type: 'bind',
      options: ['rw', 'nosuid', 'nodev', 'bind'],
    });
    expect(cdiSpecFile(UID)).toBe(`emuv.io-vgpu-${UID}.json`);
  });

  it('takes consumed capacity in any quantity form; without it the claim holds the device whole', () => {
    expect(preparedClaim(claim({ consumed: '30064771072' }), REF, NODE, inventory).devices[0]!.limitBytes).toBe(28 * GiB);
    const whole = claim();
    delete (whole.status.allocation.devices.results[0] as { consumedCapacity?: unknown }).consumedCapacity;
    expect(preparedClaim(whole, REF, NODE, inventory).devices[0]!.limitBytes).toBe(16 * GiB - 512 * MiB + 12 * GiB);
  });

  it.each([
    ['another UID', claim({ uid: 'other' }), 'the claim was deleted and made again'],
    ['no allocation', { metadata: { uid: UID }, status: {} }, 'is not allocated'],
    ['another pool', claim({ pool: 'node-b' }), 'is from pool "node-b"'],
    ['an unknown device', claim({ device: 'gpu-9' }), 'device gpu-9 is not offered on node node-a'],
    ['a fractional quantity', claim({ consumed: '0.5' }), 'whole number of bytes'],
    ['garbage', 'nonsense', 'not a ResourceClaim object'],
    [
      'two of our devices',
      claim({
        results: [
          { driver: DRA_DRIVER, pool: NODE, device: 'gpu-0000-01-00-0' },
          { driver: DRA_DRIVER, pool: NODE, device: 'gpu-0000-02-00-0' },
        ],
      }),
      'a container gets the memory of one GPU',
    ],
  ])('refuses %s with a clear message', (_what, obj, message) => {
    expect(() => preparedClaim(obj, REF, NODE, inventory)).toThrow(ClaimError);
    expect(() => preparedClaim(obj, REF, NODE, inventory)).toThrow(message);
  });

  it("ignores other drivers' devices in the same claim", () => {
    const c = claim({ results: [{ driver: 'gpu.nvidia.com', pool: NODE, device: 'gpu-0' }] });
    expect(preparedClaim(c, REF, NODE, inventory).devices).toEqual([]);
  });
});

describe('the checkpoint', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'emuv-dra-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips prepared claims and is parsed strictly', () => {
    const p = preparedClaim(claim(), REF, NODE, inventory);
    const text = formatCheckpoint(new Map([[UID, p]]));
    expect(parseCheckpoint(text).get(UID)).toEqual(p);
    expect(() => parseCheckpoint(text.replace('"version": 1', '"version": 2'))).toThrow('this agent reads version 1');
    expect(() => parseCheckpoint(text.replace('"limitBytes"', '"limit"'))).toThrow(/limitBytes/);
  });

  it('moves an unreadable file aside, says so, and starts empty', () => {
    const file = join(dir, 'dra-checkpoint.json');
    writeFileSync(file, '{"version": 1, "claims": {"x": 7}}');
    const log = memoryLogger();
    expect(new ClaimCheckpoint(file, log).load().size).toBe(0);
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(dir).some((f) => f.startsWith('dra-checkpoint.json.unreadable-'))).toBe(true);
    expect(log.entries.some((e) => e.level === 'error' && e.msg.includes('does not parse'))).toBe(true);
  });
});

describe('prepare and unprepare on the host', () => {
  let dir: string;
  let claims: Map<string, unknown>;
  let gets: number;
  const driver = () =>
    new EmuvDraDriver({
      nodeName: NODE,
      inventory: () => inventory,
      environment: () => ({ ...env, stateDir: join(dir, 'state') }),
      cdiDir: join(dir, 'cdi'),
      stateDir: join(dir, 'state'),
      checkpoint: new ClaimCheckpoint(join(dir, 'state', 'dra-checkpoint.json'), nopLogger),
      api: {
        getClaim: async (ns, name) => {
          gets += 1;
          return claims.get(`${ns}/${name}`) ?? null;
        },
      },
      prepareStatsDir: (allocId) => statsDirPreparer(join(dir, 'state'))({ allocId }),
      logger: nopLogger,
    });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'emuv-dra-'));
    claims = new Map([['ns/c1', claim()]]);
    gets = 0;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the CDI spec and stats directory, answers again from the checkpoint after a restart, and unprepares to nothing', async () => {
    const d1 = driver();
    const r1 = await d1.prepare([REF]);
    expect(r1.get(UID)).toEqual({
      devices: [
        {
          requestNames: ['vram'],
          poolName: NODE,
          deviceName: 'gpu-0000-02-00-0',
          cdiDeviceIds: [`${CDI_KIND}=dra-${UID}-0`],
          shareId: '6f1e2d3c-0000-4000-8000-000000000abc',
        },
      ],
    });
    const specFile = join(dir, 'cdi', cdiSpecFile(UID));
    expect(JSON.parse(readFileSync(specFile, 'utf8')).devices[0].containerEdits.env).toContain(`${ENV.limitBytes}=${28 * GiB}`);
    const statsDir = join(dir, 'state', `dra-${UID}-0`);
    expect(statSync(statsDir).mode & 0o7777).toBe(0o1777);
    writeFileSync(join(statsDir, 'marker'), 'the running container wrote this');

    // A restarted agent: the claim is gone from the apiserver, the kubelet asks again.
    claims.clear();
    const d2 = driver();
    expect(d2.prepared().map((c) => c.uid)).toEqual([UID]);
    expect((await d2.prepare([REF])).get(UID)).toEqual(r1.get(UID));
    expect(existsSync(join(statsDir, 'marker'))).toBe(true);
    expect(gets).toBe(1);

    expect((await d2.unprepare([REF, { namespace: 'ns', name: 'never', uid: 'never-prepared' }])).get(UID)).toEqual({});
    expect(existsSync(specFile)).toBe(false);
    expect(existsSync(statsDir)).toBe(false);
    expect(driver().prepared()).toEqual([]);
  });

  it('answers every claim, with the reason for those it cannot prepare', async () => {
    const other = { namespace: 'ns', name: 'gone', uid: 'u-gone' };
    const r = await driver().prepare([other, REF]);
    expect(r.get('u-gone')).toEqual({ error: 'ResourceClaim ns/gone does not exist' });
    expect('devices' in r.get(UID)!).toBe(true);
  });

  it('removes every claim at uninstall', async () => {
    const d = driver();
    await d.prepare([REF]);
    expect(await d.removeAll()).toBe(1);
    expect(readdirSync(join(dir, 'cdi'))).toEqual([]);
    expect(existsSync(join(dir, 'state', 'dra-checkpoint.json'))).toBe(false);
  });
});

/** An apiserver's resourceslices, in memory: names from generateName, quantities canonicalised, resourceVersions checked. */
class Slices implements SliceApi {
  items = new Map<string, SliceView & { spec: Record<string, unknown> }>();
  writes = 0;
  #n = 0;
  #rv = 0;
  async listSlices(nodeName: string, driver: string) {
    return [...this.items.values()].filter((s) => s.spec.nodeName === nodeName && s.spec.driver === driver).map((s) => structuredClone(s));
  }
  /** An apiserver with DRAConsumableCapacity off: it drops the gated fields on write. */
  gateOff = false;
  #store(name: string, body: object) {
    const o = structuredClone(body) as SliceView & {
      spec: { devices: { capacity: Record<string, { value: string }>; allowMultipleAllocations?: boolean }[] };
    };
    if (this.gateOff) for (const d of o.spec.devices) delete d.allowMultipleAllocations;
    // The apiserver writes quantities back in its canonical form.
    for (const d of o.spec.devices) for (const c of Object.values(d.capacity)) c.value = String(parseQuantity(c.value).num);
    o.metadata = { ...o.metadata, name, resourceVersion: String(++this.#rv) };
    this.items.set(name, o as never);
    this.writes += 1;
    return structuredClone(o);
  }
  async createSlice(body: object) {
    const m = (body as { metadata: { generateName: string } }).metadata;
    return this.#store(`${m.generateName}${++this.#n}`, body);
  }
  async replaceSlice(name: string, body: object) {
    const rv = (body as SliceView).metadata.resourceVersion;
    if (this.items.get(name)?.metadata.resourceVersion !== rv) throw new Error('409 Conflict');
    return this.#store(name, body);
  }
  async deleteSlice(name: string) {
    this.items.delete(name);
  }
  async nodeUid() {
    return 'node-uid-1';
  }
}

describe('the slice sync', () => {
  const devices = desiredDevices({ nodeName: NODE, inventory, discovery, unhealthy: new Set() });

  it('creates the slice owned by the Node, leaves it alone while it matches, and puts it back after a wipe with a higher generation', async () => {
    const api = new Slices();
    const sync = new SliceSync({ nodeName: NODE, api, desired: () => devices, logger: nopLogger });
    await sync.run();
    const [first] = await api.listSlices(NODE, DRA_DRIVER);
    expect(first!.metadata.name).toBe(`${NODE}-${DRA_DRIVER}-1`);
    expect(first).toMatchObject({
      metadata: { ownerReferences: [{ kind: 'Node', name: NODE, uid: 'node-uid-1', controller: true }] },
      spec: { driver: DRA_DRIVER, nodeName: NODE, pool: { name: NODE, generation: 1, resourceSliceCount: 1 } },
    });
    await sync.run();
    expect(api.writes).toBe(1);

    api.items.clear(); // the kubelet's start-up wipe
    await sync.run();
    const [back] = await api.listSlices(NODE, DRA_DRIVER);
    expect(back!.spec?.pool?.generation).toBe(2);
    expect(normalizeDevices(back!.spec?.devices)).toBe(normalizeDevices(devices));
  });

  it('updates in place with a bumped generation, deletes extra slices, and removes everything when nothing is desired', async () => {
    const api = new Slices();
    let want: typeof devices | null = devices;
    const sync = new SliceSync({ nodeName: NODE, api, desired: () => want, logger: nopLogger });
    await sync.run();
    await api.createSlice({
      metadata: { generateName: 'stray-' },
      spec: { driver: DRA_DRIVER, nodeName: NODE, pool: { generation: 5 }, devices: [] },
    });
    want = devices.slice(0, 1);
    await sync.run();
    const slices = await api.listSlices(NODE, DRA_DRIVER);
    expect(slices).toHaveLength(1);
    expect(slices[0]!.spec?.pool?.generation).toBe(6);
    expect((slices[0]!.spec?.devices as { name: string }[]).map((d) => d.name)).toEqual([deviceName('0000:01:00.0')]);
    want = null;
    await sync.run();
    expect(await api.listSlices(NODE, DRA_DRIVER)).toEqual([]);
  });

  it('says when the apiserver drops shared capacity, and does not rewrite the slice on every pass', async () => {
    const api = new Slices();
    api.gateOff = true;
    const log = memoryLogger();
    const sync = new SliceSync({ nodeName: NODE, api, desired: () => devices, logger: log, resyncMs: 60_000 });
    await expect(sync.run()).rejects.toThrow(/DRAConsumableCapacity/);
    // A watch event right after the write: no second write (it would be dropped the same way).
    await expect(sync.run()).rejects.toThrow(/DRAConsumableCapacity/);
    expect(api.writes).toBe(1);
    expect(log.entries.filter((e) => e.level === 'error')).toHaveLength(1);
  });

  it('reports a failed pass and recovers on the next one', async () => {
    const api = new Slices();
    let fail = true;
    const results: (string | null)[] = [];
    const flaky: SliceApi = {
      ...api,
      listSlices: async (n, d) => (fail ? Promise.reject(new Error('apiserver down')) : api.listSlices(n, d)),
      createSlice: (b) => api.createSlice(b),
      replaceSlice: (n, b) => api.replaceSlice(n, b),
      deleteSlice: (n) => api.deleteSlice(n),
      nodeUid: () => api.nodeUid(),
    };
    const sync = new SliceSync({
      nodeName: NODE,
      api: flaky,
      desired: () => devices,
      logger: nopLogger,
      onResult: (r) => results.push(r.message),
    });
    await expect(sync.run()).rejects.toThrow('apiserver down');
    fail = false;
    await sync.run();
    expect(results).toEqual(['apiserver down', null]);
    expect(api.items.size).toBe(1);
  });
});

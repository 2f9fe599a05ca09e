/**
 * DRA kubelet plugin benchmark: NodePrepareResources and NodeUnprepareResources latency p50/p99 over real gRPC
 * (v1 DRAPlugin) on a Unix socket, 1,000 calls of each, every prepare for a fresh claim (new UID) followed by its
 * unprepare, both timed separately. The measured side is DraKubeletPlugin serving EmuvDraDriver with its real
 * host side in a temp dir (stats directory, CDI spec written and renamed, checkpoint rewritten whole with fsync on
 * every prepare and every unprepare) and an in-memory ClaimApi that answers a ResourceClaim allocated on the node's
 * GPU with consumedCapacity memory 12Gi. Baseline in the same run: DraKubeletPlugin serving a no-op DraDriver that
 * answers the same device list without touching the disk. The two sides alternate in blocks of 100 pairs so that
 * drift on the machine hits both alike. Then the checkpoint-size effect: the same prepare/unprepare pairs with 100
 * claims already prepared (the checkpoint, rewritten on each call, then holds 100-101 claims instead of 0-1).
 * Client and servers run in this one process (the same for both sides); loggers are no-ops.
 * Writes bench/results/dra.json (keeps its `cluster` key, written by bench/dra-cluster.ts).
 * Usage: node bench/dra.ts
 */
import { credentials } from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DRA_DRIVER } from '../common/contracts/dra.ts';
import { nopLogger } from '../common/log.ts';
import { REPO_ROOT, tempDir } from '../localcluster/repo.ts';
import { statsDirPreparer } from '../plugin/deviceplugin/host-prep.ts';
import type { NodeDiscovery } from '../plugin/discovery/types.ts';
import { discoveredGpu } from '../test/fixtures/gpus.ts';
import { DEFAULT_CAPACITY_CONFIG, GiB } from '../plugin/inventory/capacity.ts';
import { buildInventory } from '../plugin/inventory/inventory.ts';
import { ClaimCheckpoint } from '../plugin/dra/checkpoint.ts';
import { EmuvDraDriver } from '../plugin/dra/driver.ts';
import { DraKubeletPlugin, type DraClaimRef, type DraDriver, type PrepareOutcome } from '../plugin/dra/kubelet-plugin.ts';
import { deviceName } from '../plugin/dra/slice.ts';
import { draV1Api, type DRAPluginClient } from '../protos/dra.ts';
import { machine, summarize } from './lib.ts';

const CALLS = 1000;
const BLOCK = 100;
const WARMUP = 50;
const PRELOADED = 100;
const NODE = 'bench-node';
const NS = 'bench';
const GPU = '0000:01:00.0';
const DEVICE = deviceName(GPU);
const SHARE_ID = '6f1e2d3c-0000-4000-8000-000000000abc';

const tmp = tempDir('emuv-bench-dra-');

// One 16 GiB GPU, 512 MiB reserve, 8 GiB host spill: the device offers 23.5 GiB; every claim consumes 12Gi.
const discovery: NodeDiscovery = {
  gpus: [discoveredGpu(GPU, { vramGiB: 16, name: 'NVIDIA H100 PCIe' })],
  hostMemoryBytes: 64 * GiB,
  driverVersion: '580.95.05',
  nvml: false,
  problems: [],
};
const inventory = buildInventory(discovery, { ...DEFAULT_CAPACITY_CONFIG, hostBudget: { kind: 'bytes', bytes: 8 * GiB } });

/** The ResourceClaim the apiserver would return: allocated on this node's GPU, 12Gi consumed, reserved for one pod. */
function claimObject(name: string, uid: string) {
  return {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceClaim',
    metadata: { name, namespace: NS, uid },
    status: {
      allocation: {
        devices: {
          results: [
            { request: 'vram', driver: DRA_DRIVER, pool: NODE, device: DEVICE, shareID: SHARE_ID, consumedCapacity: { memory: '12Gi' } },
          ],
        },
      },
      reservedFor: [{ resource: 'pods', name: `pod-${name}`, uid: randomUUID() }],
    },
  };
}

const noHealth = { current: () => [], subscribe: () => () => {} };

/** The no-op baseline: the same answer as EmuvDraDriver gives, no API call, no disk. */
class NoopDriver implements DraDriver {
  async prepare(claims: DraClaimRef[]): Promise<Map<string, PrepareOutcome>> {
    return new Map(
      claims.map((c) => [
        c.uid,
        {
          devices: [
            {
              requestNames: ['vram'],
              poolName: NODE,
              deviceName: DEVICE,
              cdiDeviceIds: [`${DRA_DRIVER}/vgpu=dra-${c.uid}-0`],
              shareId: SHARE_ID,
            },
          ],
        },
      ]),
    );
  }
  async unprepare(claims: DraClaimRef[]): Promise<Map<string, { error?: string }>> {
    return new Map(claims.map((c) => [c.uid, {}]));
  }
}

interface Side {
  name: string;
  plugin: DraKubeletPlugin;
  client: DRAPluginClient;
  seq: number;
}

async function serve(name: string, driver: DraDriver): Promise<Side> {
  const dir = join(tmp.path, name);
  const plugin = new DraKubeletPlugin({
    driverName: DRA_DRIVER,
    pluginDir: join(dir, 'plugins', DRA_DRIVER),
    registryDir: join(dir, 'plugins_registry'),
    driver,
    health: noHealth,
    logger: nopLogger,
  });
  await plugin.start();
  const client = new (draV1Api().DRAPlugin)(`unix://${plugin.endpoint}`, credentials.createInsecure());
  return { name, plugin, client, seq: 0 };
}

const since = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

/** One prepare of a fresh claim, then its unprepare; each timed from the call to its response, checked. */
async function pair(side: Side, claims: Map<string, unknown> | null): Promise<{ prepare: number; unprepare: number; uid: string }> {
  const name = `${side.name}-${side.seq++}`;
  const uid = randomUUID();
  claims?.set(`${NS}/${name}`, claimObject(name, uid));
  const ref = { namespace: NS, name, uid };
  const prepare = await prepareOne(side, ref);
  const t1 = process.hrtime.bigint();
  await new Promise<void>((ok, fail) =>
    side.client.NodeUnprepareResources({ claims: [ref] }, (err, res) => {
      if (err) return fail(err);
      const e = res?.claims?.[uid]?.error;
      return e ? fail(new Error(`unprepare ${name}: ${e}`)) : ok();
    }),
  );
  const unprepare = since(t1);
  claims?.delete(`${NS}/${name}`);
  return { prepare, unprepare, uid };
}

async function prepareOne(side: Side, ref: DraClaimRef): Promise<number> {
  const t0 = process.hrtime.bigint();
  await new Promise<void>((ok, fail) =>
    side.client.NodePrepareResources({ claims: [ref] }, (err, res) => {
      if (err) return fail(err);
      const r = res?.claims?.[ref.uid];
      if (!r || r.error) return fail(new Error(`prepare ${ref.name}: ${r?.error ?? 'no entry'}`));
      if (r.devices?.[0]?.device_name !== DEVICE || r.devices[0].share_id !== SHARE_ID)
        return fail(new Error(`prepare ${ref.name}: unexpected ${JSON.stringify(r)}`));
      return ok();
    }),
  );
  return since(t0);
}

async function main() {
  // The measured side: the agent's driver over a real host side in the temp dir.
  const host = join(tmp.path, 'host');
  const stateDir = join(host, 'state');
  const cdiDir = join(host, 'cdi');
  const checkpointFile = join(stateDir, 'dra-checkpoint.json');
  const claims = new Map<string, unknown>();
  let apiGets = 0;
  const prepareStatsDir = statsDirPreparer(stateDir);
  const driver = new EmuvDraDriver({
    nodeName: NODE,
    inventory: () => inventory,
    environment: () => ({
      existingDevNodes: new Set(['nvidiactl', 'nvidia-uvm', 'nvidia0']),
      hostDevDir: '/dev',
      interposer: null,
      stateDir,
    }),
    cdiDir,
    stateDir,
    checkpoint: new ClaimCheckpoint(checkpointFile, nopLogger),
    api: {
      getClaim: async (ns, name) => {
        apiGets += 1;
        return claims.get(`${ns}/${name}`) ?? null;
      },
    },
    prepareStatsDir: (allocId) => prepareStatsDir({ allocId }),
    logger: nopLogger,
  });
  const emuv = await serve('emuv', driver);
  const noop = await serve('noop', new NoopDriver());

  // Warm-up (both sides), then 1,000 pairs each, alternating in blocks.
  for (let i = 0; i < WARMUP; i++) {
    await pair(emuv, claims);
    await pair(noop, null);
  }
  const samples = (): { prepare: number[]; unprepare: number[] } => ({ prepare: [], unprepare: [] });
  const measured = samples();
  const baseline = samples();
  let checked: boolean;
  const run = async (side: Side, into: ReturnType<typeof samples>, n: number, c: Map<string, unknown> | null) => {
    for (let i = 0; i < n; i++) {
      const r = await pair(side, c);
      into.prepare.push(r.prepare);
      into.unprepare.push(r.unprepare);
    }
  };
  for (let done = 0; done < CALLS; done += BLOCK) {
    await run(emuv, measured, BLOCK, claims);
    await run(noop, baseline, BLOCK, null);
  }
  // The measured side really did its host work, and undid it: spot-check one claim by hand.
  {
    const name = 'emuv-check';
    const uid = randomUUID();
    claims.set(`${NS}/${name}`, claimObject(name, uid));
    await prepareOne(emuv, { namespace: NS, name, uid });
    const spec = JSON.parse(readFileSync(join(cdiDir, `emuv.io-vgpu-${uid}.json`), 'utf8'));
    const env = spec.devices[0].containerEdits.env as string[];
    checked =
      env.includes(`EMUV_LIMIT_BYTES=${12 * GiB}`) &&
      statSync(join(stateDir, `dra-${uid}-0`)).isDirectory() &&
      Object.keys(JSON.parse(readFileSync(checkpointFile, 'utf8')).claims).includes(uid);
    await new Promise<void>((ok, fail) =>
      emuv.client.NodeUnprepareResources({ claims: [{ namespace: NS, name, uid }] }, (err) => (err ? fail(err) : ok())),
    );
    checked &&= !existsSync(join(cdiDir, `emuv.io-vgpu-${uid}.json`)) && !existsSync(join(stateDir, `dra-${uid}-0`));
    if (!checked) throw new Error('the measured side did not write and remove the CDI spec, stats directory and checkpoint entry');
  }
  const leftAfterRun = {
    cdiSpecs: readdirSync(cdiDir).length,
    statsDirs: readdirSync(stateDir).filter((f) => f.startsWith('dra-') && statSync(join(stateDir, f)).isDirectory()).length,
  };
  const checkpointBytesEmpty = statSync(checkpointFile).size;

  // Checkpoint size: 100 claims stay prepared, then the same 1,000 pairs (each prepare rewrites 101 claims).
  const held: string[] = [];
  for (let i = 0; i < PRELOADED; i++) {
    const name = `held-${i}`;
    const uid = randomUUID();
    claims.set(`${NS}/${name}`, claimObject(name, uid));
    await prepareOne(emuv, { namespace: NS, name, uid });
    held.push(uid);
  }
  const checkpointBytesHeld = statSync(checkpointFile).size;
  const withHeld = samples();
  for (let i = 0; i < WARMUP; i++) await pair(emuv, claims);
  await run(emuv, withHeld, CALLS, claims);
  const preparedAtEnd = driver.prepared().length;

  emuv.client.close();
  noop.client.close();
  await emuv.plugin.stop();
  await noop.plugin.stop();

  const m = { prepare: summarize(measured.prepare), unprepare: summarize(measured.unprepare) };
  const b = { prepare: summarize(baseline.prepare), unprepare: summarize(baseline.unprepare) };
  const h = { prepare: summarize(withHeld.prepare), unprepare: summarize(withHeld.unprepare) };
  const ratio = (x: number, y: number) => Math.round((x / y) * 100) / 100;
  const file = join(REPO_ROOT, 'bench', 'results', 'dra.json');
  const result = {
    benchmark: 'dra',
    date: new Date().toISOString(),
    machine: machine(),
    method:
      'v1 DRAPlugin over gRPC on a Unix socket, client and server in one process; per pair: NodePrepareResources of one fresh claim (new UID), ' +
      `then its NodeUnprepareResources, each timed call to response; ${WARMUP} warm-up pairs per side, then ${CALLS} pairs per side alternating in blocks of ${BLOCK}`,
    prepare: m.prepare,
    unprepare: m.unprepare,
    baselineNoopDriver: {
      note: 'DraKubeletPlugin over a DraDriver answering the same device list, no ResourceClaim read, no disk',
      prepare: b.prepare,
      unprepare: b.unprepare,
    },
    ratio: {
      prepareP50: ratio(m.prepare.p50Ms, b.prepare.p50Ms),
      prepareP99: ratio(m.prepare.p99Ms, b.prepare.p99Ms),
      prepareMean: ratio(m.prepare.meanMs, b.prepare.meanMs),
      unprepareP50: ratio(m.unprepare.p50Ms, b.unprepare.p50Ms),
      unprepareP99: ratio(m.unprepare.p99Ms, b.unprepare.p99Ms),
      unprepareMean: ratio(m.unprepare.meanMs, b.unprepare.meanMs),
    },
    with100ClaimsPrepared: {
      note:
        `${PRELOADED} claims stay prepared while the same pairs run; the checkpoint is rewritten whole (write, fsync, rename) ` +
        'on every prepare and every unprepare, so each call here writes 100-101 claims instead of 0-1',
      checkpointBytes: { empty: checkpointBytesEmpty, with100: checkpointBytesHeld },
      prepare: h.prepare,
      unprepare: h.unprepare,
      vsEmptyCheckpoint: {
        prepareP50: ratio(h.prepare.p50Ms, m.prepare.p50Ms),
        prepareP99: ratio(h.prepare.p99Ms, m.prepare.p99Ms),
        unprepareP50: ratio(h.unprepare.p50Ms, m.unprepare.p50Ms),
        unprepareP99: ratio(h.unprepare.p99Ms, m.unprepare.p99Ms),
      },
    },
    checks: {
      hostSideVerified: checked,
      claimReadsFromApi: apiGets,
      leftAfterAllUnprepared: leftAfterRun,
      preparedAtEnd,
    },
    hostSide: `temp dir on ${tmpFs()}`,
  };
  mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  // Read-modify-write: the `cluster` key is bench/dra-cluster.ts's, kept whichever ran first.
  const previous = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  const merged = previous.cluster !== undefined ? { ...result, cluster: previous.cluster } : result;
  writeFileSync(file, `${JSON.stringify(merged, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
}

/** The file system type of the temp dir (fsync costs differ a lot between tmpfs and a disk). */
function tmpFs(): string {
  try {
    const mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .filter((f) => f.length > 2 && tmp.path.startsWith(f[1]!))
      .sort((x, y) => y[1]!.length - x[1]!.length);
    return mounts[0] ? `${mounts[0][2]} (${mounts[0][1]})` : 'unknown';
  } catch {
    return 'unknown';
  }
}

main()
  .finally(() => tmp.cleanup())
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });

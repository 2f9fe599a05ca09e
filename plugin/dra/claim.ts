/**
 * NodePrepareResources for one claim, as pure functions: the claim's allocation (read from the apiserver by
 * the driver) is checked against this node's inventory, and becomes a CDI spec whose container edits are
 * what Allocate gives a container on the device-plugin path (plugin/deviceplugin/allocate.ts builds both),
 * plus EMUV_LIMIT_BYTES = the bytes the scheduler booked for this claim (`consumedCapacity.memory`).
 */
import { CAPACITY_MEMORY, CDI_KIND, CDI_SPEC_PREFIX, CDI_VERSION, DRA_DRIVER } from '../../common/contracts/dra.ts';
import { ENV } from '../../common/contracts/interposer.ts';
import { parseQuantity, QuantityError, wholeBytes } from '../../common/kube/quantity.ts';
import { containerEdits, draAllocId, listIds, type AllocateEnvironment } from '../deviceplugin/allocate.ts';
import type { Inventory, OfferedGpu } from '../inventory/inventory.ts';
import { deviceMemoryBytes, deviceName, spillPerGpu } from './slice.ts';

export interface ClaimRef {
  namespace: string;
  uid: string;
  name: string;
}

/** One device of a prepared claim: what the kubelet is told, and what the agent shows (usage, /status). */
export interface ClaimDevice {
  request: string;
  pool: string;
  device: string;
  shareId: string | null;
  gpuAddress: string;
  /** EMUV_LIMIT_BYTES of the container(s) using the claim. */
  limitBytes: number;
  /** Stats directory name and CDI device name. */
  allocId: string;
  /** Fully qualified CDI device ID handed to the kubelet. */
  cdiDevice: string;
}

export interface PreparedClaim extends ClaimRef {
  devices: ClaimDevice[];
  /** Pods the claim is reserved for, from status.reservedFor (for people: usage and /status name them). */
  pods: string[];
}

/** A claim that cannot be prepared: the message goes back to the kubelet (and into the pod's events). */
export class ClaimError extends Error {
  override name = 'ClaimError';
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** The ResourceClaim's results for emuv's driver, checked; throws ClaimError with what is wrong and where. */
export function preparedClaim(claim: unknown, ref: ClaimRef, nodeName: string, inventory: Inventory): PreparedClaim {
  const where = `ResourceClaim ${ref.namespace}/${ref.name}`;
  if (!isObject(claim) || !isObject(claim.metadata)) throw new ClaimError(`${where}: not a ResourceClaim object`);
  const uid = str(claim.metadata.uid);
  if (uid !== ref.uid)
    throw new ClaimError(`${where} has UID ${uid ?? '(none)'}, the kubelet asked for ${ref.uid}: the claim was deleted and made again`);
  const status = isObject(claim.status) ? claim.status : {};
  const allocation = isObject(status.allocation) ? status.allocation : null;
  if (!allocation) throw new ClaimError(`${where} is not allocated (no status.allocation)`);
  const results = isObject(allocation.devices) && Array.isArray(allocation.devices.results) ? allocation.devices.results : [];
  const ours = results.filter((r): r is Json => isObject(r) && r.driver === DRA_DRIVER);
  if (ours.length > 1) {
    const names = ours.map((r) => String(r.device));
    throw new ClaimError(
      `${where} holds ${ours.length} ${DRA_DRIVER} devices (${listIds(names)}): a container gets the memory of one GPU; ` +
        `ask for one device per claim (one claim per container)`,
    );
  }
  const byName = new Map(inventory.gpus.map((g) => [deviceName(g.address), g]));
  const spill = spillPerGpu(inventory);
  const devices = ours.map((r, index): ClaimDevice => {
    const pool = str(r.pool) ?? '';
    const device = str(r.device) ?? '';
    if (pool !== nodeName) throw new ClaimError(`${where}: device ${device} is from pool "${pool}", this node's pool is "${nodeName}"`);
    const gpu = byName.get(device);
    if (!gpu)
      throw new ClaimError(`${where}: device ${device} is not offered on node ${nodeName} (offered: ${listIds([...byName.keys()])})`);
    const allocId = draAllocId(ref.uid, index);
    return {
      request: str(r.request) ?? '',
      pool,
      device,
      shareId: str(r.shareID),
      gpuAddress: gpu.address,
      limitBytes: consumedBytes(r, gpu, spill, where),
      allocId,
      cdiDevice: `${CDI_KIND}=${allocId}`,
    };
  });
  const reservedFor = Array.isArray(status.reservedFor) ? status.reservedFor : [];
  const pods = reservedFor.filter((c): c is Json => isObject(c) && c.resource === 'pods').map((c) => String(c.name));
  return { namespace: ref.namespace, uid: ref.uid, name: ref.name, devices, pods };
}

/**
 * The bytes booked: `consumedCapacity.memory` (rounded up to the request policy's step by the scheduler).
 * An allocation without it took the device whole (DRAConsumableCapacity off when it was allocated): the
 * container gets all the device offers, as the scheduler booked it.
 */
function consumedBytes(result: Json, gpu: OfferedGpu, spill: number, where: string): number {
  const consumed = isObject(result.consumedCapacity) ? result.consumedCapacity[CAPACITY_MEMORY] : undefined;
  if (consumed === undefined) return deviceMemoryBytes(gpu, spill);
  let bytes: bigint;
  try {
    bytes = wholeBytes(parseQuantity(consumed), `consumedCapacity.${CAPACITY_MEMORY}`);
  } catch (err) {
    if (err instanceof QuantityError) throw new ClaimError(`${where}: consumedCapacity.${CAPACITY_MEMORY}: ${err.message}`);
    throw err;
  }
  if (bytes <= 0n || bytes > BigInt(Number.MAX_SAFE_INTEGER))
    throw new ClaimError(`${where}: consumedCapacity.${CAPACITY_MEMORY} ${String(consumed)} is out of range`);
  return Number(bytes);
}

// ---- the CDI spec ----

/**
 * Only what CDI 0.5.0 has (env, device nodes with hostPath, mounts with type), the oldest version every CDI-capable
 * containerd loads. Runtimes refuse a spec that uses a field newer than its cdiVersion: `annotations` (0.6.0)
 * would make containerd 2.4 drop the whole spec ("the spec version must be at least v0.6.0").
 */
export interface CdiSpec {
  cdiVersion: string;
  kind: string;
  devices: { name: string; containerEdits: CdiEdits }[];
}

interface CdiEdits {
  env: string[];
  deviceNodes: { path: string; hostPath: string; permissions: string }[];
  mounts: { hostPath: string; containerPath: string; type: 'bind'; options: string[] }[];
}

/** The spec's file name in the CDI directory: one per claim, named by its UID (never reused). */
export function cdiSpecFile(claimUid: string): string {
  return `${CDI_SPEC_PREFIX}${claimUid}.json`;
}

/** One CDI device per prepared device: the device plugin's container response, as CDI container edits. */
export function cdiSpec(prepared: PreparedClaim, inventory: Inventory, env: AllocateEnvironment): CdiSpec {
  const gpus = new Map(inventory.gpus.map((g) => [g.address, g]));
  return {
    cdiVersion: CDI_VERSION,
    kind: CDI_KIND,
    devices: prepared.devices.map((d) => {
      const gpu = gpus.get(d.gpuAddress)!;
      const r = containerEdits({ gpu, slotIds: [], allocId: d.allocId }, env);
      const envs: Record<string, string> = { ...r.envs, [ENV.limitBytes]: String(d.limitBytes) };
      // Fixed mode on DRA: the claim's bytes are the container's share of the card (up to all of its VRAM).
      if (gpu.vramMode === 'fixed') envs[ENV.vramShare] = String(Math.min(gpu.usableVramBytes, d.limitBytes));
      return {
        name: d.allocId,
        containerEdits: {
          env: Object.entries(envs).map(([k, v]) => `${k}=${v}`),
          deviceNodes: r.devices.map((n) => ({ path: n.containerPath, hostPath: n.hostPath, permissions: n.permissions })),
          mounts: r.mounts.map((m) => ({
            hostPath: m.hostPath,
            containerPath: m.containerPath,
            type: 'bind' as const,
            options: [m.readOnly ? 'ro' : 'rw', 'nosuid', 'nodev', 'bind'],
          })),
        },
      };
    }),
  };
}

/**
 * Allocate, as pure functions: validate the kubelet's device IDs against the inventory, then build
 * the container response from small steps (device nodes, interposer mounts, stats mount, EMUV_* env).
 * Host side effects (creating the stats directory) happen elsewhere, before this runs.
 */
import { CONTAINER_PATHS, CONTRACT_VERSION, ENV } from '../../common/contracts/interposer.ts';
import { InvalidRequestError } from '../../common/errors.ts';
import type { ContainerAllocateResponse, DeviceSpec, Mount } from '../../protos/deviceplugin.ts';
import type { Inventory, OfferedGpu } from '../inventory/inventory.ts';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

/** Device nodes every CUDA container needs, besides its GPU's /dev/nvidia<minor>. */
export const CONTROL_DEVICE_NODES = ['nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools'] as const;

export interface Grant {
  gpu: OfferedGpu;
  slotIds: string[];
  /** Names the per-allocation stats directory; derived from the IDs, so the same IDs give the same dir. */
  allocId: string;
}

/** Host paths of an installed interposer, or null when the agent has none to offer. */
export interface InterposerInstall {
  libDir: string;
  preloadFile: string;
}

export interface AllocateEnvironment {
  /** Device node names that exist on the host (probed just before building). */
  existingDevNodes: ReadonlySet<string>;
  /** Host directory of device nodes as the kubelet sees it (usually /dev). */
  hostDevDir: string;
  interposer: InterposerInstall | null;
  /** Host directory holding per-allocation stats directories. */
  stateDir: string;
}

export function allocIdFor(ids: readonly string[]): string {
  const sorted = [...ids].sort();
  if (sorted.length === 1) return sorted[0]!;
  const digest = createHash('sha256').update(sorted.join('\n')).digest('hex').slice(0, 12);
  return `${sorted[0]}-n${sorted.length}-${digest}`;
}

/** How many IDs an error message names, and how much of each: the rest is counted, not echoed. */
const NAMED_IDS = 8;
const ID_CHARS = 80;

/**
 * IDs for an error message, bounded: the message travels back in the gRPC status (an HTTP/2 trailer,
 * which the transport resets as a protocol error once it grows past its header limit) and into one log
 * line, so a request naming 10,000 IDs, or one ID of a megabyte, must not be echoed whole.
 */
export function listIds(ids: readonly string[]): string {
  const shown = ids.slice(0, NAMED_IDS).map((id) => (id.length > ID_CHARS ? `${id.slice(0, ID_CHARS)}… (${id.length} characters)` : id));
  const more = ids.length - shown.length;
  return `${shown.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
}

/** Maps the requested IDs to one GPU; throws InvalidRequestError naming the bad IDs (a bounded number of them). */
export function resolveGrant(ids: readonly string[], inventory: Inventory): Grant {
  if (ids.length === 0) throw new InvalidRequestError('no device IDs in the container request');
  const owner = new Map<string, OfferedGpu>();
  for (const gpu of inventory.gpus) for (const s of gpu.slots) owner.set(s.id, gpu);
  const unknown = ids.filter((id) => !owner.has(id));
  if (unknown.length > 0)
    throw new InvalidRequestError(`${unknown.length} unknown device ID${unknown.length === 1 ? '' : 's'}: ${listIds(unknown)}`);
  const seen = new Set<string>();
  const dupes = new Set<string>();
  for (const id of ids) (seen.has(id) ? dupes : seen).add(id);
  if (dupes.size > 0) throw new InvalidRequestError(`device IDs requested twice: ${listIds([...dupes])}`);
  const gpus = new Set(ids.map((id) => owner.get(id)!.address));
  if (gpus.size > 1) {
    const byGpu = [...gpus].map((a) => `${a}: ${listIds(ids.filter((id) => owner.get(id)!.address === a))}`);
    throw new InvalidRequestError(`device IDs span GPUs (one container gets slots of one GPU): ${byGpu.join('; ')}`);
  }
  return { gpu: owner.get(ids[0]!)!, slotIds: [...ids], allocId: allocIdFor(ids) };
}

/**
 * Whether a name is one allocIdFor or draAllocId makes (a slot ID, or the first slot ID, count and digest; a claim UID and index): how the
 * uninstall tells the agent's stats directories from anything else someone keeps in the state directory.
 */
export function isAllocId(name: string): boolean {
  return (
    /^gpu-[0-9a-f]{4}-[0-9a-f]{2}-[0-9a-f]{2}-[0-7]-s[0-9]{2,3}(-n[0-9]{1,3}-[0-9a-f]{12})?$/.test(name) ||
    /^dra-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-[0-9]{1,3}$/.test(name)
  );
}

/** The allocation ID of a DRA claim's device: its stats directory and its CDI device name (plugin/dra/claim.ts). */
export function draAllocId(claimUid: string, index: number): string {
  return `dra-${claimUid}-${index}`;
}

export function statsDirFor(stateDir: string, allocId: string): string {
  return join(stateDir, allocId);
}

/** What a container on a grant gets, whichever path hands it over (device-plugin response or CDI spec). */
export interface ContainerEdits {
  envs: Record<string, string>;
  mounts: { containerPath: string; hostPath: string; readOnly: boolean }[];
  devices: { containerPath: string; hostPath: string; permissions: string }[];
}

function deviceNodes(grant: Grant, env: AllocateEnvironment): ContainerEdits['devices'] {
  const names: string[] = [...CONTROL_DEVICE_NODES];
  if (grant.gpu.minor !== null) names.push(`nvidia${grant.gpu.minor}`);
  return names
    .filter((n) => env.existingDevNodes.has(n))
    .map((n) => ({ containerPath: `/dev/${n}`, hostPath: join(env.hostDevDir, n), permissions: 'rw' }));
}

function mounts(grant: Grant, env: AllocateEnvironment): ContainerEdits['mounts'] {
  const out: ContainerEdits['mounts'] = [];
  if (env.interposer) {
    out.push({ containerPath: CONTAINER_PATHS.libDir, hostPath: env.interposer.libDir, readOnly: true });
    out.push({ containerPath: CONTAINER_PATHS.preloadFile, hostPath: env.interposer.preloadFile, readOnly: true });
  }
  out.push({ containerPath: CONTAINER_PATHS.statsDir, hostPath: statsDirFor(env.stateDir, grant.allocId), readOnly: false });
  return out;
}

function envs(grant: Grant): Record<string, string> {
  const gpu = grant.gpu;
  const e: Record<string, string> = {
    [ENV.contractVersion]: String(CONTRACT_VERSION),
    [ENV.gpu]: gpu.uuid ?? gpu.address,
    [ENV.vramShare]: String(gpu.slotVramShareBytes),
    [ENV.statsFile]: CONTAINER_PATHS.statsFile,
  };
  // Fill: the share is the card; fixed: a slot's share. One slot per container is the norm (the
  // webhook asks for one); more slots of one GPU in fixed mode add their shares up.
  e[ENV.vramMode] = gpu.vramMode;
  // Always sent, auto included: the container's placement never depends on the interposer's default.
  e[ENV.spillBackend] = gpu.spillBackend;
  if (gpu.vramMode === 'fixed' && grant.slotIds.length > 1) {
    e[ENV.vramShare] = String(Math.min(gpu.usableVramBytes, gpu.slotVramShareBytes * grant.slotIds.length));
  }
  // The NVIDIA container runtime injects the driver libraries for the GPUs named here.
  if (gpu.uuid) {
    e.NVIDIA_VISIBLE_DEVICES = gpu.uuid;
    e.NVIDIA_DRIVER_CAPABILITIES = 'compute,utility';
  }
  return e;
}

export function containerEdits(grant: Grant, env: AllocateEnvironment): ContainerEdits {
  return { envs: envs(grant), mounts: mounts(grant, env), devices: deviceNodes(grant, env) };
}

export function buildContainerResponse(grant: Grant, env: AllocateEnvironment): ContainerAllocateResponse {
  const e = containerEdits(grant, env);
  return {
    envs: e.envs,
    mounts: e.mounts.map((m): Mount => ({ container_path: m.containerPath, host_path: m.hostPath, read_only: m.readOnly })),
    devices: e.devices.map((d): DeviceSpec => ({ container_path: d.containerPath, host_path: d.hostPath, permissions: d.permissions })),
    annotations: {},
    cdi_devices: [],
  };
}

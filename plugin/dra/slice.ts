/**
 * This node's ResourceSlice, as pure functions: the inventory (the same object the device plugin and node
 * status read) becomes one pool named after the node with one device per offered, healthy GPU. Each device
 * is shared (`allowMultipleAllocations`) and has one consumable capacity, `memory`: the virtual GPU memory
 * behind that GPU, which the scheduler books claim by claim and the interposer enforces in the container.
 *
 * The node's host spill budget is one number and DRA capacity is per device, so the budget is split evenly
 * across the offered GPUs (exact on the usual one-GPU node; docs/dra.md says what that means on more).
 */
import { CONTRACT_VERSION } from '../../common/contracts/interposer.ts';
import { ATTR, CAPACITY_MEMORY, DRA_DRIVER, MEMORY_STEP_BYTES } from '../../common/contracts/dra.ts';
import { formatBytes, parseQuantity, QuantityError, wholeBytes } from '../../common/kube/quantity.ts';
import type { NodeDiscovery } from '../discovery/types.ts';
import type { Inventory, OfferedGpu } from '../inventory/inventory.ts';

export type Attribute = { int: number } | { string: string } | { bool: boolean } | { version: string };

export interface SliceDevice {
  name: string;
  attributes: Record<string, Attribute>;
  capacity: Record<
    string,
    { value: string; requestPolicy?: { default: string; validRange: { min: string; max?: string; step?: string } } }
  >;
  allowMultipleAllocations: true;
}

export interface SliceSpec {
  driver: string;
  nodeName: string;
  pool: { name: string; generation: number; resourceSliceCount: number };
  devices: SliceDevice[];
}

/** What the slice is made from. */
export interface SliceInputs {
  nodeName: string;
  inventory: Inventory;
  discovery: NodeDiscovery;
  /** GPUs (PCI addresses) the health poll finds unhealthy: left out of the slice so nothing new lands there. */
  unhealthy: ReadonlySet<string>;
}

/** A DNS label naming a GPU on this node: gpu-0000-01-00-0. Stable across restarts (the PCI address). */
export function deviceName(gpuAddress: string): string {
  return `gpu-${gpuAddress.replace(/[:.]/g, '-')}`;
}

const floorStep = (bytes: number) => Math.floor(bytes / MEMORY_STEP_BYTES) * MEMORY_STEP_BYTES;

/** Host spill behind each GPU: the node's budget split evenly, in whole steps. */
export function spillPerGpu(inventory: Inventory): number {
  return inventory.gpus.length === 0 ? 0 : floorStep(inventory.hostBudgetBytes / inventory.gpus.length);
}

/** The virtual memory a device offers: usable VRAM plus its part of the spill budget, in whole steps. */
export function deviceMemoryBytes(gpu: OfferedGpu, spill: number): number {
  return floorStep(gpu.usableVramBytes + spill);
}

/**
 * NVIDIA's driver versions (580.95.05) are not semver because of the leading zero; the version attribute needs
 * semver (so that CEL can compare it), so the numbers are written without leading zeros. Null when it is no
 * dotted number.
 */
export function driverSemver(version: string): string | null {
  const parts = /^([0-9]+)\.([0-9]+)(?:\.([0-9]+))?$/.exec(version.trim());
  if (!parts) return null;
  return [parts[1], parts[2], parts[3] ?? '0'].map((p) => String(Number(p))).join('.');
}

function attributes(gpu: OfferedGpu, spill: number, discovery: NodeDiscovery): Record<string, Attribute> {
  const a: Record<string, Attribute> = {
    [ATTR.pciAddress]: { string: gpu.address },
    [ATTR.numaNode]: { int: gpu.numaNode },
    [ATTR.vramBytes]: { int: gpu.vramBytes },
    [ATTR.usableVramBytes]: { int: gpu.usableVramBytes },
    [ATTR.hostSpillBytes]: { int: spill },
    [ATTR.contractVersion]: { int: CONTRACT_VERSION },
  };
  if (gpu.name) a[ATTR.model] = { string: gpu.name };
  if (gpu.uuid) a[ATTR.uuid] = { string: gpu.uuid };
  const found = discovery.gpus.find((g) => g.pci.address === gpu.address);
  const bw = found?.pci.link.bandwidthBytesPerSec;
  if (typeof bw === 'number' && Number.isFinite(bw)) a[ATTR.pcieBandwidth] = { int: Math.round(bw) };
  const semver = discovery.driverVersion ? driverSemver(discovery.driverVersion) : null;
  if (semver) a[ATTR.driverVersion] = { version: semver };
  return a;
}

export function sliceDevice(gpu: OfferedGpu, spill: number, discovery: NodeDiscovery): SliceDevice {
  const total = deviceMemoryBytes(gpu, spill);
  // A claim that names no amount books the card's usable VRAM (after the reserve): one GPU's worth, not the spill.
  const dflt = Math.max(MEMORY_STEP_BYTES, Math.min(floorStep(gpu.usableVramBytes), total));
  return {
    name: deviceName(gpu.address),
    attributes: attributes(gpu, spill, discovery),
    capacity: {
      [CAPACITY_MEMORY]: {
        value: formatBytes(BigInt(total)),
        requestPolicy: {
          default: formatBytes(BigInt(dflt)),
          validRange: {
            min: formatBytes(BigInt(MEMORY_STEP_BYTES)),
            max: formatBytes(BigInt(total)),
            step: formatBytes(BigInt(MEMORY_STEP_BYTES)),
          },
        },
      },
    },
    allowMultipleAllocations: true,
  };
}

/** The devices this node offers over DRA, in PCI order (stable, so an unchanged node writes nothing). */
export function desiredDevices(inputs: SliceInputs): SliceDevice[] {
  const spill = spillPerGpu(inputs.inventory);
  return inputs.inventory.gpus
    .filter((g) => !inputs.unhealthy.has(g.address) && deviceMemoryBytes(g, spill) >= MEMORY_STEP_BYTES)
    .map((g) => sliceDevice(g, spill, inputs.discovery))
    .sort((a, b) => a.name.localeCompare(b.name));
}

export function sliceSpec(nodeName: string, devices: SliceDevice[], generation: number): SliceSpec {
  return { driver: DRA_DRIVER, nodeName, pool: { name: nodeName, generation, resourceSliceCount: 1 }, devices };
}

// ---- comparing what the apiserver holds with what we want ----

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A quantity as exact bytes text, whatever form the apiserver canonicalised it to ("8Gi" and "8589934592" agree). */
function bytesText(q: unknown): string {
  try {
    return wholeBytes(parseQuantity(q), 'capacity').toString();
  } catch (err) {
    if (err instanceof QuantityError) return `invalid:${String(q)}`;
    throw err;
  }
}

function normalizeCapacity(c: unknown): unknown {
  if (!isObject(c)) return c;
  const out: Json = { value: bytesText(c.value) };
  const rp = c.requestPolicy;
  if (isObject(rp)) {
    const vr = isObject(rp.validRange) ? rp.validRange : {};
    out.requestPolicy = {
      default: rp.default === undefined ? undefined : bytesText(rp.default),
      validRange: {
        min: vr.min === undefined ? undefined : bytesText(vr.min),
        max: vr.max === undefined ? undefined : bytesText(vr.max),
        step: vr.step === undefined ? undefined : bytesText(vr.step),
      },
    };
  }
  return out;
}

/** The parts of a device we own, in a form where equal means equal. */
export function normalizeDevices(devices: unknown): string {
  if (!Array.isArray(devices)) return '[]';
  const norm = devices.map((d) => {
    if (!isObject(d)) return d;
    const capacity = isObject(d.capacity) ? d.capacity : {};
    const attrs = isObject(d.attributes) ? d.attributes : {};
    return {
      name: d.name,
      attributes: Object.fromEntries(
        Object.keys(attrs)
          .sort()
          .map((k) => [k, attrs[k]]),
      ),
      capacity: Object.fromEntries(
        Object.keys(capacity)
          .sort()
          .map((k) => [k, normalizeCapacity(capacity[k])]),
      ),
      allowMultipleAllocations: d.allowMultipleAllocations ?? false,
    };
  });
  return JSON.stringify(norm);
}

/**
 * Whether the apiserver dropped a field emuv relies on: an apiserver with DRAConsumableCapacity off (1.34/1.35
 * without the gate) silently drops `allowMultipleAllocations` and `requestPolicy`, and the devices would then be
 * booked whole, one claim each. Returns a message naming the fix, or null.
 */
export function droppedFields(written: SliceDevice[], stored: unknown): string | null {
  if (written.length === 0 || !Array.isArray(stored)) return null;
  const lost = stored.some((d) => !isObject(d) || d.allowMultipleAllocations !== true);
  return lost
    ? 'the apiserver dropped allowMultipleAllocations from the ResourceSlice: the DRAConsumableCapacity feature gate is off ' +
        '(Kubernetes 1.34/1.35: enable it on kube-apiserver, kube-scheduler and kubelet; on by default from 1.36)'
    : null;
}

/**
 * The Dynamic Resource Allocation names emuv publishes, in one place: the agent's ResourceSlices and CDI
 * specs, the chart's DeviceClass and admission policy, the webhook's claim templates and the tests all read
 * them from here. Field numbers and API shapes are Kubernetes' (resource.k8s.io/v1, kubelet DRA v1); see
 * docs/dra.md for how they fit together.
 */

/** The DRA driver name: ResourceSlice.spec.driver, the kubelet plugin's registered name, the CDI vendor. */
export const DRA_DRIVER = 'gpu.emuv.io';
/** The DeviceClass that selects emuv's devices (the chart installs it). */
export const DEVICE_CLASS = 'gpu.emuv.io';
/**
 * The consumable capacity of a device: virtual GPU memory in bytes (usable VRAM plus the GPU's part of the
 * node's host spill budget). Named `memory` as in NVIDIA's and HAMi's drivers, so a claim written for them
 * books memory here too; here it is memory the container can really allocate.
 */
export const CAPACITY_MEMORY = 'memory';
/** Step and minimum of a `memory` request: requests are rounded up to whole MiB by the scheduler. */
export const MEMORY_STEP_BYTES = 1024 * 1024;

/** Device attribute names (unqualified: the driver name is their domain). */
export const ATTR = {
  model: 'model',
  uuid: 'uuid',
  pciAddress: 'pciAddress',
  numaNode: 'numaNode',
  /** Physical VRAM of the card, bytes (int). */
  vramBytes: 'vramBytes',
  /** VRAM offered after the reserve, bytes (int). */
  usableVramBytes: 'usableVramBytes',
  /** Host spill behind this device, bytes (int). */
  hostSpillBytes: 'hostSpillBytes',
  /** One-direction PCIe bandwidth the link's speed and width imply, bytes per second (int). */
  pcieBandwidth: 'pcieBandwidthBytesPerSec',
  /** The NVIDIA driver's version, as semver (version) when it parses as one. */
  driverVersion: 'driverVersion',
  /** The interposer contract version a container on this device gets (int). */
  contractVersion: 'emuvContractVersion',
} as const;

/** CDI: the kind of emuv's per-claim specs, and the spec version they declare (the lowest that has what they use). */
export const CDI_KIND = `${DRA_DRIVER}/vgpu`;
export const CDI_VERSION = '0.5.0';
/** File name prefix of emuv's specs in the CDI directory; the rest is the claim UID. */
export const CDI_SPEC_PREFIX = 'emuv.io-vgpu-';

/** Kubelet-side names: the registration socket in plugins_registry, the DRA socket in plugins/<driver>/. */
export const DRA_REGISTRATION_SOCKET = `${DRA_DRIVER}-reg.sock`;
export const DRA_SOCKET = 'dra.sock';

/** How a node serves virtual GPU memory (EmuvPolicy.spec.allocation, EmuvNode.spec.allocation, --allocation). */
export const ALLOCATION_VALUES = ['DevicePlugin', 'DRA'] as const;
export type Allocation = (typeof ALLOCATION_VALUES)[number];
export const DEFAULT_ALLOCATION: Allocation = 'DevicePlugin';

/**
 * The webhook's conversion of `limits: emuv.io/vram-virtual` on DRA: one ResourceClaimTemplate per size and
 * namespace (named by the size in bytes, so pods asking for the same size share it), and one pod claim per
 * container, referenced from that container's resources.claims.
 */
export const CLAIM_TEMPLATE_PREFIX = 'emuv-vram-';
export const CLAIM_REQUEST = 'vram';
/** Pod claim names: `emuv-c<index>` for containers, `emuv-i<index>` for init containers. */
export const POD_CLAIM_PREFIX = 'emuv-';
/** Label on the templates the webhook makes (so they can be listed and removed). */
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'emuv-webhook';

export function claimTemplateName(bytes: bigint): string {
  return `${CLAIM_TEMPLATE_PREFIX}${bytes.toString()}`;
}

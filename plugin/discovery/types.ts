/** What discovery learns about a node. Plain data, produced by the readers in this folder. */

/** Something in the host's files that could not be used, and what emuv did instead. */
export interface Problem {
  /** What it concerns: a PCI address, a file, or "node". */
  subject: string;
  message: string;
}

export interface PcieLink {
  /** As the kernel writes it, e.g. "16.0 GT/s PCIe"; null when unreadable. */
  speed: string | null;
  /** Transfer rate per lane in GT/s, parsed from `speed`. */
  gtPerSec: number | null;
  width: number | null;
  /** Usable bytes per second in one direction that speed and width imply (after line encoding). */
  bandwidthBytesPerSec: number | null;
}

/** An NVIDIA display or 3D controller found on the PCI bus. */
export interface PciGpu {
  /** Domain:bus:device.function, lower case, e.g. 0000:01:00.0. */
  address: string;
  vendorId: number;
  deviceId: number | null;
  subsystemVendorId: number | null;
  subsystemDeviceId: number | null;
  /** 24-bit PCI class code, 0x0300xx (VGA) or 0x0302xx (3D controller). */
  classCode: number;
  /** NUMA node, -1 when the platform has none or it is unknown. */
  numaNode: number;
  /** Name of the bound kernel driver, null when none is bound. */
  driver: string | null;
  link: PcieLink;
}

/** What the NVIDIA driver says about a GPU (NVML, or its /proc information file). */
export interface DriverGpuInfo {
  uuid: string | null;
  name: string | null;
  minor: number | null;
  /** Total VRAM in bytes (NVML only; /proc does not say). */
  memoryBytes: number | null;
}

export type VramSource = 'nvml' | 'flag';

/** One GPU with everything known about it, and whether it can be offered. */
export interface DiscoveredGpu {
  pci: PciGpu;
  uuid: string | null;
  name: string | null;
  minor: number | null;
  vramBytes: number | null;
  vramSource: VramSource | null;
  /** Where uuid/name/minor came from. */
  driverInfoSource: 'nvml' | 'proc' | null;
  offered: boolean;
  /** Why the GPU is not offered (set exactly when offered is false). */
  reason: string | null;
}

export interface NodeDiscovery {
  gpus: DiscoveredGpu[];
  /** MemTotal from meminfo, bytes; null when unreadable. */
  hostMemoryBytes: number | null;
  /** The NVIDIA kernel module's version (/proc/driver/nvidia/version), e.g. 580.95.05; null when unknown. */
  driverVersion: string | null;
  /** True when NVML was loaded and answered. */
  nvml: boolean;
  problems: Problem[];
}

/**
 * NVML through dlopen of libnvidia-ml.so.1 (koffi). Optional: a node without the NVIDIA driver's
 * user-space libraries simply has no NVML, and discovery falls back to /proc and --gpu-memory.
 * Only the handful of calls emuv needs are bound; a library that lacks one of the optional calls
 * (name, minor) still serves the others.
 */
import koffi, { type LibraryHandle } from 'koffi';
import type { DriverGpuInfo } from './types.ts';

const NVML_SUCCESS = 0;
/** NVML_ERROR_GPU_IS_LOST: the GPU fell off the bus or otherwise became inaccessible. */
const NVML_ERROR_GPU_IS_LOST = 15;

export interface NvmlGpu extends DriverGpuInfo {
  /** PCI address normalised to 4-digit domain, lower case: 0000:01:00.0. */
  pciAddress: string;
}

/** What discovery and the health monitor need from NVML. */
export interface Nvml {
  gpus(): NvmlGpu[];
  /** True when NVML says the GPU at this PCI address is lost (or is no longer listed). */
  isLost(pciAddress: string): boolean;
  close(): void;
}

/** NVML bus IDs carry an 8-digit domain ("00000000:01:00.0"); sysfs uses 4 digits. */
export function normalizePciAddress(busId: string): string | null {
  const m = /^([0-9a-fA-F]{4,8}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(busId.trim());
  if (!m) return null;
  const domain = Number.parseInt(m[1]!, 16);
  if (domain > 0xffff) return null;
  return `${domain.toString(16).padStart(4, '0')}:${m[2]}:${m[3]}.${m[4]}`.toLowerCase();
}

type Fn = (...args: unknown[]) => number;

// koffi keeps named types in a process-wide registry, so they are declared once, here.
const Device = koffi.pointer('nvmlDevice_t', koffi.opaque());
const Memory = koffi.struct('nvmlMemory_t', { total: 'unsigned long long', free: 'unsigned long long', used: 'unsigned long long' });
const PciInfo = koffi.struct('nvmlPciInfo_t', {
  busIdLegacy: koffi.array('char', 16),
  domain: 'unsigned int',
  bus: 'unsigned int',
  device: 'unsigned int',
  pciDeviceId: 'unsigned int',
  pciSubSystemId: 'unsigned int',
  busId: koffi.array('char', 32),
});
void [Device, Memory, PciInfo];

/**
 * Loads NVML from `libraryPath` (default: the SONAME, found by the dynamic loader) and initialises it.
 * Returns null, with the reason, when the library is absent or nvmlInit fails.
 */
export function openNvml(libraryPath = 'libnvidia-ml.so.1'): { nvml: Nvml } | { nvml: null; reason: string } {
  let lib: LibraryHandle;
  try {
    lib = koffi.load(libraryPath);
  } catch (err) {
    return { nvml: null, reason: `cannot load ${libraryPath}: ${(err as Error).message.split('\n')[0]}` };
  }
  const optional = (proto: string): Fn | null => {
    try {
      return lib.func(proto) as Fn;
    } catch {
      return null;
    }
  };
  const init = optional('int nvmlInit_v2()');
  const shutdown = optional('int nvmlShutdown()');
  const getCount = optional('int nvmlDeviceGetCount_v2(_Out_ unsigned int *count)');
  const getHandle = optional('int nvmlDeviceGetHandleByIndex_v2(unsigned int index, _Out_ nvmlDevice_t *device)');
  const getPci = optional('int nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, _Out_ nvmlPciInfo_t *pci)');
  const getUuid = optional('int nvmlDeviceGetUUID(nvmlDevice_t device, _Out_ uint8_t *uuid, unsigned int length)');
  const getName = optional('int nvmlDeviceGetName(nvmlDevice_t device, _Out_ uint8_t *name, unsigned int length)');
  const getMemory = optional('int nvmlDeviceGetMemoryInfo(nvmlDevice_t device, _Out_ nvmlMemory_t *memory)');
  const getMinor = optional('int nvmlDeviceGetMinorNumber(nvmlDevice_t device, _Out_ unsigned int *minor)');
  if (!init || !getCount || !getHandle || !getPci) {
    lib.unload();
    return {
      nvml: null,
      reason: `${libraryPath} lacks nvmlInit_v2, nvmlDeviceGetCount_v2, nvmlDeviceGetHandleByIndex_v2 or nvmlDeviceGetPciInfo_v3`,
    };
  }
  const rc = init();
  if (rc !== NVML_SUCCESS) {
    lib.unload();
    return { nvml: null, reason: `nvmlInit_v2 returned ${rc}` };
  }
  const cString = (buf: Buffer): string | null => {
    const end = buf.indexOf(0);
    const s = buf.subarray(0, end < 0 ? buf.length : end).toString('latin1');
    return s.length > 0 && /^[\x20-\x7e]+$/.test(s) ? s : null;
  };

  type Entry = { handle: unknown; gpu: NvmlGpu };
  const enumerate = (): { entries: Entry[]; lostIndexes: Set<string> } => {
    const entries: Entry[] = [];
    const lost = new Set<string>();
    const count = [0];
    if (getCount(count) !== NVML_SUCCESS) return { entries, lostIndexes: lost };
    for (let i = 0; i < (count[0] ?? 0) && i < 64; i++) {
      const h = [null];
      if (getHandle(i, h) !== NVML_SUCCESS) continue;
      const pci: Record<string, unknown> = {};
      const prc = getPci(h[0], pci);
      const busId = typeof pci.busId === 'string' ? pci.busId : '';
      const address = prc === NVML_SUCCESS ? normalizePciAddress(busId) : null;
      if (!address) continue;
      const gpu: NvmlGpu = { pciAddress: address, uuid: null, name: null, minor: null, memoryBytes: null };
      if (getUuid) {
        const b = Buffer.alloc(96);
        if (getUuid(h[0], b, b.length) === NVML_SUCCESS) gpu.uuid = cString(b);
      }
      if (getName) {
        const b = Buffer.alloc(96);
        if (getName(h[0], b, b.length) === NVML_SUCCESS) gpu.name = cString(b);
      }
      if (getMemory) {
        const m: Record<string, unknown> = {};
        const mrc = getMemory(h[0], m);
        if (mrc === NVML_SUCCESS && (typeof m.total === 'number' || typeof m.total === 'bigint')) gpu.memoryBytes = Number(m.total);
        if (mrc === NVML_ERROR_GPU_IS_LOST) lost.add(address);
      }
      if (getMinor) {
        const minor = [0];
        if (getMinor(h[0], minor) === NVML_SUCCESS) gpu.minor = minor[0] ?? null;
      }
      entries.push({ handle: h[0], gpu });
    }
    return { entries, lostIndexes: lost };
  };

  let closed = false;
  return {
    nvml: {
      gpus: () => enumerate().entries.map((e) => e.gpu),
      isLost: (pciAddress) => {
        const { entries, lostIndexes } = enumerate();
        return lostIndexes.has(pciAddress) || !entries.some((e) => e.gpu.pciAddress === pciAddress);
      },
      close: () => {
        if (closed) return;
        closed = true;
        shutdown?.();
        lib.unload();
      },
    },
  };
}

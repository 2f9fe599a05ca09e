/**
 * Discovery: PCI scan, then per GPU the driver's view (NVML, else /proc), then VRAM (NVML, else
 * --gpu-memory), then whether it can be offered. Pure combination of reader outputs; the readers are
 * passed in so that tests and `emuv discover` use the same code with fixture roots.
 */
import { scanPci } from './pci-scan.ts';
import { readDriverVersion, readHostMemory, readNvidiaInformation } from './procfs.ts';
import type { Nvml, NvmlGpu } from './nvml.ts';
import type { DiscoveredGpu, DriverGpuInfo, NodeDiscovery, PciGpu, Problem } from './types.ts';

export interface DiscoveryInputs {
  sysRoot: string;
  procRoot: string;
  /** NVML when loaded, else null. */
  nvml: Nvml | null;
  /** VRAM per PCI address from --gpu-memory or the node's config (used when NVML cannot say). */
  gpuMemory: ReadonlyMap<string, number>;
}

/** Why a GPU with this driver binding cannot be offered, or null when it can. */
export function driverReason(driver: string | null): string | null {
  if (driver === 'nvidia') return null;
  if (driver === null) return 'no kernel driver bound';
  if (driver === 'vfio-pci') return 'bound to vfio-pci (passed through to a VM)';
  return `bound to ${driver}, not to the nvidia driver`;
}

export function combineGpu(
  pci: PciGpu,
  fromNvml: NvmlGpu | undefined,
  fromProc: DriverGpuInfo | null,
  flagMemory: number | undefined,
): DiscoveredGpu {
  const info = fromNvml ?? fromProc;
  let vramBytes: number | null = null;
  let vramSource: DiscoveredGpu['vramSource'] = null;
  if (fromNvml?.memoryBytes) {
    vramBytes = fromNvml.memoryBytes;
    vramSource = 'nvml';
  } else if (flagMemory !== undefined) {
    vramBytes = flagMemory;
    vramSource = 'flag';
  }
  let reason = driverReason(pci.driver);
  if (!reason && vramBytes === null) reason = `VRAM size unknown: no NVML answer and no --gpu-memory ${pci.address}=<size>`;
  return {
    pci,
    uuid: info?.uuid ?? null,
    name: info?.name ?? null,
    minor: info?.minor ?? null,
    vramBytes,
    vramSource,
    driverInfoSource: fromNvml ? 'nvml' : fromProc ? 'proc' : null,
    offered: reason === null,
    reason,
  };
}

export function discoverNode(inputs: DiscoveryInputs): NodeDiscovery {
  const { gpus: pciGpus, problems } = scanPci(inputs.sysRoot);
  const nvmlGpus = new Map<string, NvmlGpu>();
  if (inputs.nvml) {
    try {
      for (const g of inputs.nvml.gpus()) nvmlGpus.set(g.pciAddress, g);
    } catch (err) {
      problems.push({ subject: 'nvml', message: `query failed: ${(err as Error).message}` });
    }
  }
  const known = new Set(pciGpus.map((g) => g.address));
  for (const address of inputs.gpuMemory.keys()) {
    if (!known.has(address)) problems.push({ subject: address, message: '--gpu-memory names a PCI address with no NVIDIA GPU; ignored' });
  }
  const gpus = refuseSharedUuids(
    pciGpus.map((pci) => {
      const fromNvml = nvmlGpus.get(pci.address);
      const fromProc = fromNvml ? null : readNvidiaInformation(inputs.procRoot, pci.address, problems);
      return combineGpu(pci, fromNvml, fromProc, inputs.gpuMemory.get(pci.address));
    }),
  );
  const hostMemoryBytes = readHostMemory(inputs.procRoot, problems);
  return {
    gpus,
    hostMemoryBytes,
    driverVersion: readDriverVersion(inputs.procRoot),
    nvml: inputs.nvml !== null,
    problems: dedupe(problems),
  };
}

/**
 * A UUID names one GPU: NVIDIA_VISIBLE_DEVICES and EMUV_GPU carry it into the container. Two GPUs that
 * report the same one cannot both be what they say, and offering both would hand out one card's slots
 * twice; which of them is right cannot be told, so neither is offered.
 */
export function refuseSharedUuids(gpus: DiscoveredGpu[]): DiscoveredGpu[] {
  const byUuid = new Map<string, string[]>();
  for (const g of gpus) if (g.uuid) byUuid.set(g.uuid.toLowerCase(), [...(byUuid.get(g.uuid.toLowerCase()) ?? []), g.pci.address]);
  return gpus.map((g) => {
    const sharing = g.uuid ? byUuid.get(g.uuid.toLowerCase())! : [];
    if (sharing.length < 2) return g;
    const others = sharing.filter((a) => a !== g.pci.address).join(', ');
    return { ...g, offered: false, reason: `UUID ${g.uuid} is also reported for ${others}: a UUID names one GPU, so neither is offered` };
  });
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.subject}\0${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

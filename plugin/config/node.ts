/**
 * What `emuv discover` and `emuv plugin` share: where the host is visible, how GPUs are identified, and the
 * node's capacity configuration (the flags an EmuvNode's spec replaces once the operator has written it).
 */
import { MAX_SPILL_PERCENT, parseHostSpill } from '../../common/contracts/host-spill.ts';
import { SPILL_BACKENDS, VRAM_MODES } from '../../common/contracts/interposer.ts';
import { int, list, offOr, oneOf, parseSizeBytes, path, size, valueType, type FlagValues } from '../../common/flags.ts';
import { LOG_LEVELS, type LogLevel } from '../../common/log.ts';
import { DEFAULT_CAPACITY_CONFIG, MAX_SLOTS_PER_GPU, type CapacityConfig } from '../inventory/capacity.ts';

const PCI_ADDRESS = /^([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])=(.+)$/;

/** One `--gpu-memory` entry: `<pci-address>=<size>`, the address in lower case. */
const gpuMemoryEntry = valueType('<pci-address>=<size>', (t): [string, number] => {
  const m = PCI_ADDRESS.exec(t);
  if (!m) throw new Error('expected <pci-address>=<size>, e.g. 0000:01:00.0=8Gi');
  const bytes = parseSizeBytes(m[2]!);
  if (bytes === 0) throw new Error('the size must be above 0');
  return [m[1]!.toLowerCase(), bytes];
});

/** The entries as a map; an address given twice is refused (which one was meant cannot be told). */
export const gpuMemory = list(gpuMemoryEntry, (entries) => {
  const out = new Map<string, number>();
  for (const [address, bytes] of entries) {
    if (out.has(address)) throw new Error(`${address} given twice`);
    out.set(address, bytes);
  }
  return out;
});

/** The host spill budget: the grammar of common/contracts/host-spill.ts, shared with the CRDs. */
export const hostSpill = valueType('auto|<size>|<n>%', parseHostSpill);

export const NODE_FLAGS = {
  'sys-root': {
    type: path(),
    default: '/sys',
    help: 'where the host sysfs is visible',
    doc: 'where the host sysfs is visible (`/host/sys` in the DaemonSet)',
  },
  'proc-root': { type: path(), default: '/proc', help: 'where the host procfs is visible' },
  'dev-root': {
    type: path(),
    default: '/dev',
    help: 'where the host /dev is visible (device nodes are looked for here)',
    doc: 'where the host `/dev` is visible (device nodes are looked for here)',
  },
  'gpu-memory': {
    type: gpuMemory,
    default: '',
    help: 'VRAM of a GPU when NVML cannot say: <pci-address>=<size>, e.g. 0000:01:00.0=8Gi',
    doc: 'VRAM of a GPU when NVML cannot say: `<pci-address>=<size>`, e.g. `0000:01:00.0=8Gi`',
  },
  'nvml-library': { type: offOr(path('<library>')), default: 'libnvidia-ml.so.1', help: 'the NVML library to dlopen, or off' },
  'slots-per-gpu': {
    type: int(1, MAX_SLOTS_PER_GPU),
    default: String(DEFAULT_CAPACITY_CONFIG.slotsPerGpu),
    help: `emuv.io/vgpu slots per GPU (1 to ${MAX_SLOTS_PER_GPU})`,
    doc: `\`emuv.io/vgpu\` slots per GPU (1 to ${MAX_SLOTS_PER_GPU})`,
  },
  'vram-reserve': { type: size(), default: '512Mi', help: 'VRAM kept back per GPU for CUDA contexts and the driver' },
  'host-spill': {
    type: hostSpill,
    default: 'auto',
    help: `host RAM offered for spill: auto (min(50 % of MemTotal, MemTotal - 8 GiB)), a size, or a percent of MemTotal from 0% to ${MAX_SPILL_PERCENT}%`,
    doc:
      'host RAM offered for spill: `auto` (or `Auto`) = min(50 % of MemTotal, MemTotal − 8 GiB), a size, or a percent of MemTotal ' +
      `from \`0%\` to \`${MAX_SPILL_PERCENT}%\`: the grammar of \`hostSpillBudget\` ([Host spill budget](#host-spill-budget))`,
  },
  'vram-mode': {
    type: oneOf(VRAM_MODES),
    default: 'fill',
    help: 'fill: a container may use the whole card before it spills; fixed: each slot gets usable VRAM / slots',
    doc: '`fill`: a container may use the whole card before it spills; `fixed`: each slot gets usable VRAM / slots',
  },
  'spill-backend': {
    // The interposer contract's values (EMUV_SPILL_BACKEND of every container the device plugin allocates).
    type: oneOf(SPILL_BACKENDS),
    default: 'auto',
    help: 'where spilled memory lives: auto (VMM host memory, pinned as the fallback), pinned or managed',
    doc: "where spilled memory lives: `auto` (VMM host memory, pinned as the fallback), `pinned` or `managed`; an EmuvNode's `spillBackend` replaces it",
  },
  'log-level': {
    type: oneOf(LOG_LEVELS),
    default: 'info',
    help: 'debug, info, warn or error; logs are JSON lines on stdout',
    doc: '`debug`, `info`, `warn` or `error`; logs are JSON lines on stdout',
  },
} as const;

export interface CommonConfig {
  sysRoot: string;
  procRoot: string;
  devRoot: string;
  gpuMemory: Map<string, number>;
  nvmlLibrary: string | null;
  capacity: CapacityConfig;
  logLevel: LogLevel;
}

/** The typed values of NODE_FLAGS as a CommonConfig. */
export function commonConfig(v: FlagValues<typeof NODE_FLAGS>): CommonConfig {
  return {
    sysRoot: v['sys-root'],
    procRoot: v['proc-root'],
    devRoot: v['dev-root'],
    gpuMemory: v['gpu-memory'],
    nvmlLibrary: v['nvml-library'],
    capacity: {
      slotsPerGpu: v['slots-per-gpu'],
      reserveBytes: v['vram-reserve'],
      hostBudget: v['host-spill'],
      vramMode: v['vram-mode'],
      spillBackend: v['spill-backend'],
    },
    logLevel: v['log-level'],
  };
}

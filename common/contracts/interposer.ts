/**
 * The interposer environment contract (`EMUV_*`), version 1.
 *
 * One list, mirrored by `native/include/emuv_contract.h`; `test/contract/interposer-env.test.ts` fails
 * when the two disagree. Writers: the device plugin's `Allocate` (GPU, share, mode, stats path) and the
 * admission webhook (`EMUV_LIMIT_BYTES`). Reader: `libemuv-cuda.so` / `libemuv-nvml.so`, once, at lazy init.
 */

/** Bumped on an incompatible change; the interposer refuses (passes through) a major it does not know. */
export const CONTRACT_VERSION = 1;

export const ENV = {
  /** Contract major version the writer speaks ("1"). */
  contractVersion: 'EMUV_CONTRACT_VERSION',
  /** Virtual total the container sees and may never exceed (VRAM + host spill), bytes or Ki/Mi/Gi/Ti. */
  limitBytes: 'EMUV_LIMIT_BYTES',
  /** VRAM this container may place on its GPU before it spills. */
  vramShare: 'EMUV_VRAM_SHARE',
  /** `fill` (spill when the share or the card is full) or `fixed` (each slot gets VRAM / slots). */
  vramMode: 'EMUV_VRAM_MODE',
  /** Which GPU the slot belongs to: a GPU UUID (`GPU-…`) or a PCI address (`0000:01:00.0`). */
  gpu: 'EMUV_GPU',
  /** Path of the per-container stats file inside the container. */
  statsFile: 'EMUV_STATS_FILE',
  /** `error`, `warn` (default), `info` or `debug`. */
  logLevel: 'EMUV_LOG_LEVEL',
  /** Tuning, normally unset: VRAM kept for allocations below the large threshold (default max(1Gi, 15 % of the share), at most half). */
  headroom: 'EMUV_HEADROOM',
  /** Tuning, normally unset: allocations of at least this size may be split VRAM|host (default 64Mi). */
  largeThreshold: 'EMUV_LARGE_THRESHOLD',
  /** Tuning, normally unset: deny-once before spilling, `auto` (default: on when PyTorch is loaded), `on` or `off`. */
  oomRetry: 'EMUV_OOM_RETRY',
  /**
   * Where spilled `cuMemAlloc` memory lives, one of SPILL_BACKENDS (default `auto`). Optional and added within
   * version 1: an interposer that predates it ignores it and places memory as `auto` does.
   */
  spillBackend: 'EMUV_SPILL_BACKEND',
} as const;

export type EnvName = (typeof ENV)[keyof typeof ENV];

export const VRAM_MODES = ['fill', 'fixed'] as const;
export type VramMode = (typeof VRAM_MODES)[number];

/**
 * EMUV_SPILL_BACKEND values, as `EMUV_SPILL_BACKENDS` in emuv_contract.h. `auto`: VMM host memory in the
 * same device range as the VRAM part (split), zero-copy pinned memory where host VMM is unavailable;
 * `pinned`: always zero-copy pinned memory, the whole allocation; `managed`: CUDA managed memory advised to
 * stay in host RAM, the whole allocation (the GPU reaches it over the bus; page faults on first touch).
 */
export const SPILL_BACKENDS = ['auto', 'pinned', 'managed'] as const;
export type SpillBackendMode = (typeof SPILL_BACKENDS)[number];

/** Where the device plugin mounts things inside the container. */
export const CONTAINER_PATHS = {
  /** Interposer libraries, mounted read-only. */
  libDir: '/usr/local/emuv/lib',
  /** The preload list, mounted read-only over the container's own file. */
  preloadFile: '/etc/ld.so.preload',
  /** Per-allocation stats directory, mounted read-write. */
  statsDir: '/run/emuv',
  /** The stats file inside `statsDir`. */
  statsFile: '/run/emuv/stats.bin',
} as const;

/** File names of the interposer libraries (both sides of the contract use these). */
export const LIBRARY_FILES = {
  cuda: 'libemuv-cuda.so',
  nvml: 'libemuv-nvml.so',
} as const;

const SIZE_RE = /^(0|[1-9][0-9]*)(Ki|Mi|Gi|Ti)?$/;
const SIZE_MULT: Record<string, bigint> = { '': 1n, Ki: 1n << 10n, Mi: 1n << 20n, Gi: 1n << 30n, Ti: 1n << 40n };
/** Largest size either side accepts: 2^63 - 1 bytes (what a Kubernetes quantity and an int64 can hold). */
export const MAX_SIZE_BYTES = (1n << 63n) - 1n;

/**
 * Parses a contract size: plain bytes or an integer with a binary suffix (`7.5Gi` is not accepted:
 * writers always send integers, so a fraction means someone hand-wrote the value). Strict: no spaces,
 * no signs, no decimal suffixes (`G`), no leading zeros. Returns bytes or throws with the reason.
 */
export function parseSize(text: string): bigint {
  const m = SIZE_RE.exec(text);
  if (!m) throw new Error(`invalid size "${text}": expected bytes or an integer with Ki, Mi, Gi or Ti`);
  const value = BigInt(m[1]!) * SIZE_MULT[m[2] ?? '']!;
  if (value > MAX_SIZE_BYTES) throw new Error(`invalid size "${text}": larger than 2^63-1 bytes`);
  return value;
}

/** Formats bytes the way writers send them: plain decimal bytes (exact, no rounding). */
export function formatSize(bytes: bigint): string {
  return bytes.toString(10);
}

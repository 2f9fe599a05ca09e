/**
 * Reader of the interposer's per-container stats file v1 (`native/include/emuv_contract.h`).
 *
 * The file is written by every CUDA process of a container through a MAP_SHARED mapping with atomics;
 * Node has no atomics on file mappings, so the reader copies the whole 64 KiB with `readSync` and
 * uses the seqlock: a process slot is consistent when its `seq` has no update in progress (low 16 bits
 * zero) and is unchanged between two copies; container totals are accepted when two copies agree.
 * `parseStats` is pure (a Buffer in, typed values out, strict about format); `readStatsFile` does the
 * reading and retrying.
 *
 * The file lives in a directory the container owns (mode 01777, mounted read-write into it), so whatever
 * is at that path was put there by a process the agent does not trust: `openStatsFile` opens it without
 * following links and without blocking, and accepts only a regular file of at most one stats file's size.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, type Stats } from 'node:fs';
import { endianness } from 'node:os';

export const STATS_V1 = {
  magic: 0x56554d45,
  verMajor: 1,
  hdrSize: 4096,
  slotSize: 256,
  maxSlots: 240,
  maxDevs: 4,
  fileSize: 65536,
  initReady: 2,
  slotLive: 2,
  /** slot flags bit 0 (minor 1): held_total/held_vram/held_host are kept */
  slotFlagHeld: 1,
  seqBusyMask: 0xffffn,
} as const;

export class StatsFormatError extends Error {
  override name = 'StatsFormatError';
}

/**
 * The file exists but is empty: the agent creates it empty at Allocate (see deviceplugin/host-prep.ts) and
 * the container's first CUDA process formats it, so until then there is nothing to show.
 */
export class StatsEmptyError extends StatsFormatError {
  override name = 'StatsEmptyError';
}

export type VramModeName = 'fill' | 'fixed';

export interface DeviceConfig {
  vramShare: bigint;
  limitBytes: bigint;
  hostShare: bigint;
  headroom: bigint;
  largeThreshold: bigint;
}

export interface DeviceTotals {
  vramUsed: bigint;
  hostUsed: bigint;
  totalUsed: bigint;
  vramPeak: bigint;
  hostPeak: bigint;
  spillEvents: bigint;
  oomEvents: bigint;
  deniedRetries: bigint;
  overhead: bigint;
}

export interface SlotDevice {
  vram: bigint;
  host: bigint;
  managed: bigint;
  pinnedHost: bigint;
  allocs: bigint;
  frees: bigint;
}

export interface ProcessSlot {
  index: number;
  pid: number;
  hostPid: number;
  seq: bigint;
  startTime: bigint;
  lastUpdateNs: bigint;
  /** EMUV_SLOT_F_* (minor 1; 0 from a minor-0 writer) */
  flags: number;
  /**
   * What this process holds in device 0's container totals (minor 1, when flags has the held bit): what a
   * reaper gives back. null from a minor-0 writer, whose reapers give back devices[0].vram + .host.
   */
  held: { total: bigint; vram: bigint; host: bigint } | null;
  devices: SlotDevice[];
  /** false when an update was in progress in this copy (see readStatsFile) */
  consistent: boolean;
}

export interface StatsSnapshot {
  versionMajor: number;
  versionMinor: number;
  generation: bigint;
  createdNs: bigint;
  vramMode: VramModeName;
  contractVersion: number;
  gpu: string;
  devices: { config: DeviceConfig; totals: DeviceTotals }[];
  /** live processes only */
  processes: ProcessSlot[];
  /** every live slot was consistent and (for readStatsFile) the totals agreed between two copies */
  consistent: boolean;
}

type U64 = (off: number) => bigint;

/**
 * u64 reader of one copy. Every u64 of the format sits at a multiple of 8, so on a little-endian host an
 * aligned copy is read through a BigUint64Array view: a full table is 2,000+ reads per copy, and the view
 * costs a fraction of readBigUInt64LE's bounds-checked path.
 */
function u64Reader(b: Buffer): U64 {
  if (LITTLE_ENDIAN && b.byteOffset % 8 === 0) {
    const q = new BigUint64Array(b.buffer, b.byteOffset, b.length >> 3);
    return (off) => q[off >> 3]!;
  }
  return (off) => b.readBigUInt64LE(off);
}
const LITTLE_ENDIAN = endianness() === 'LE';

function devTotals(u64: U64, off: number): DeviceTotals {
  return {
    vramUsed: u64(off),
    hostUsed: u64(off + 8),
    totalUsed: u64(off + 16),
    vramPeak: u64(off + 24),
    hostPeak: u64(off + 32),
    spillEvents: u64(off + 40),
    oomEvents: u64(off + 48),
    deniedRetries: u64(off + 56),
    overhead: u64(off + 64),
  };
}

/** Decodes one copy of a stats file. Throws StatsFormatError on anything that is not stats file v1. */
export function parseStats(buf: Buffer): StatsSnapshot {
  if (buf.length < STATS_V1.hdrSize) throw new StatsFormatError(`stats file too short: ${buf.length} bytes`);
  const magic = buf.readUInt32LE(0);
  if (magic !== STATS_V1.magic) throw new StatsFormatError(`bad magic 0x${magic.toString(16)}`);
  const versionMajor = buf.readUInt16LE(4);
  if (versionMajor !== STATS_V1.verMajor) throw new StatsFormatError(`unsupported stats file major version ${versionMajor}`);
  const versionMinor = buf.readUInt16LE(6);
  const hdrSize = buf.readUInt32LE(8);
  const slotSize = buf.readUInt32LE(12);
  const maxSlots = buf.readUInt32LE(16);
  const maxDevs = buf.readUInt32LE(20);
  if (hdrSize !== STATS_V1.hdrSize || slotSize !== STATS_V1.slotSize || maxDevs !== STATS_V1.maxDevs)
    throw new StatsFormatError(`unexpected geometry: header ${hdrSize}, slot ${slotSize}, devices ${maxDevs}`);
  if (maxSlots === 0 || maxSlots > STATS_V1.maxSlots) throw new StatsFormatError(`unexpected slot count ${maxSlots}`);
  if (buf.length < hdrSize + maxSlots * slotSize)
    throw new StatsFormatError(`stats file too short: ${buf.length} bytes for ${maxSlots} slots`);
  const initState = buf.readUInt32LE(24);
  if (initState !== STATS_V1.initReady) throw new StatsFormatError(`stats file not initialised (state ${initState})`);
  const ndevs = buf.readUInt32LE(28);
  if (ndevs < 1 || ndevs > maxDevs) throw new StatsFormatError(`unexpected device count ${ndevs}`);
  const mode = buf.readUInt32LE(48);
  if (mode > 1) throw new StatsFormatError(`unknown VRAM mode ${mode}`);
  const gpuRaw = buf.subarray(56, 128);
  const u64 = u64Reader(buf);
  const nul = gpuRaw.indexOf(0);
  const devices: StatsSnapshot['devices'] = [];
  for (let d = 0; d < ndevs; d++) {
    const c = 128 + d * 64;
    devices.push({
      config: {
        vramShare: u64(c),
        limitBytes: u64(c + 8),
        hostShare: u64(c + 16),
        headroom: u64(c + 24),
        largeThreshold: u64(c + 32),
      },
      totals: devTotals(u64, 512 + d * 128),
    });
  }
  const processes: ProcessSlot[] = [];
  let consistent = true;
  for (let i = 0; i < maxSlots; i++) {
    const s = hdrSize + i * slotSize;
    if (buf.readUInt32LE(s) !== STATS_V1.slotLive) continue;
    const seq = u64(s + 16);
    const slotDevs: SlotDevice[] = [];
    for (let d = 0; d < ndevs; d++) {
      const o = s + 40 + d * 48;
      slotDevs.push({
        vram: u64(o),
        host: u64(o + 8),
        managed: u64(o + 16),
        pinnedHost: u64(o + 24),
        allocs: u64(o + 32),
        frees: u64(o + 40),
      });
    }
    const ok = (seq & STATS_V1.seqBusyMask) === 0n;
    consistent &&= ok;
    const flags = buf.readUInt32LE(s + 12);
    processes.push({
      index: i,
      pid: buf.readUInt32LE(s + 4),
      hostPid: buf.readUInt32LE(s + 8),
      seq,
      startTime: u64(s + 24),
      lastUpdateNs: u64(s + 32),
      flags,
      held: flags & STATS_V1.slotFlagHeld ? { total: u64(s + 232), vram: u64(s + 240), host: u64(s + 248) } : null,
      devices: slotDevs,
      consistent: ok,
    });
  }
  return {
    versionMajor,
    versionMinor,
    generation: u64(32),
    createdNs: u64(40),
    vramMode: mode === 1 ? 'fixed' : 'fill',
    contractVersion: buf.readUInt32LE(52),
    gpu: gpuRaw.subarray(0, nul < 0 ? gpuRaw.length : nul).toString('utf8'),
    devices,
    processes,
    consistent,
  };
}

function sameTotals(a: StatsSnapshot, b: StatsSnapshot): boolean {
  if (a.devices.length !== b.devices.length) return false;
  return a.devices.every((d, i) => {
    const t = b.devices[i]!.totals;
    return (Object.keys(d.totals) as (keyof DeviceTotals)[]).every((k) => d.totals[k] === t[k]);
  });
}

/**
 * Combines two successive copies: a slot is taken from the first copy when its seq has no update in
 * progress and is the same in the second (the first copy's values were read between the two seq reads).
 */
export function mergeCopies(first: StatsSnapshot, second: StatsSnapshot): StatsSnapshot {
  const later = new Map(second.processes.map((p) => [p.index, p]));
  const processes = first.processes.map((p) => ({ ...p, consistent: p.consistent && later.get(p.index)?.seq === p.seq }));
  return {
    ...first,
    processes,
    consistent: sameTotals(first, second) && processes.every((p) => p.consistent) && first.generation === second.generation,
  };
}

export interface ReadOptions {
  /** copies to try before giving up on a consistent result (default 16) */
  maxAttempts?: number;
}

/**
 * True when copy `a` is a consistent snapshot given the later copy `b`: container totals and generation
 * identical, and every live slot of `a` idle (no update in progress) with the same seq in `b`. Works on
 * raw bytes so a quiet file costs one parse, not two.
 */
function quietBetween(a: Buffer, b: Buffer): boolean {
  if (b.length < STATS_V1.hdrSize || a.compare(b, 32, 40, 32, 40) !== 0 || a.compare(b, 512, 1024, 512, 1024) !== 0) return false;
  const slots = Math.min(a.readUInt32LE(16), STATS_V1.maxSlots);
  for (let i = 0; i < slots; i++) {
    const s = STATS_V1.hdrSize + i * STATS_V1.slotSize;
    if (s + STATS_V1.slotSize > a.length) return false;
    if (a.readUInt32LE(s) !== STATS_V1.slotLive) continue;
    if (s + STATS_V1.slotSize > b.length) return false;
    // seq: no update in progress, and unchanged (two 32-bit reads: no native call per slot).
    const lo = a.readUInt32LE(s + 16);
    if ((lo & 0xffff) !== 0 || lo !== b.readUInt32LE(s + 16) || a.readUInt32LE(s + 20) !== b.readUInt32LE(s + 20)) return false;
  }
  return true;
}

/** Bytes a later copy must cover to validate `a`: the header and every slot up to the last live one. */
function coveredLength(a: Buffer): number {
  const slots = Math.min(a.readUInt32LE(16), STATS_V1.maxSlots);
  let last = -1;
  for (let i = 0; i < slots; i++) if (a.readUInt32LE(STATS_V1.hdrSize + i * STATS_V1.slotSize) === STATS_V1.slotLive) last = i;
  return STATS_V1.hdrSize + (last + 1) * STATS_V1.slotSize;
}

function fileKind(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isDirectory()) return 'a directory';
  return 'not a regular file';
}

function notAStatsFile(st: Stats): StatsFormatError | null {
  if (!st.isFile()) return new StatsFormatError(`not read: it is ${fileKind(st)}; a stats file is a regular file`);
  if (st.size > STATS_V1.fileSize)
    return new StatsFormatError(`not read: ${st.size} bytes; a stats file v1 is at most ${STATS_V1.fileSize}`);
  if (st.size === 0) return new StatsEmptyError('empty: no CUDA process of the container has initialised it yet');
  return null;
}

/**
 * Opens a stats file for reading, or throws (StatsFormatError for anything that is not one; the errno
 * error, e.g. ENOENT, when there is nothing at the path). Never follows a symbolic link (a container could
 * point it at any host file, or at another container's stats) and never blocks: a FIFO opened for reading
 * would wait for a writer, on the agent's only thread, forever, and at every restart again. The lstat
 * keeps devices and FIFOs from being opened at all; O_NOFOLLOW | O_NONBLOCK and the fstat cover a swap
 * between the two calls.
 */
export function openStatsFile(path: string): number {
  const before = lstatSync(path);
  const bad = notAStatsFile(before);
  if (bad) throw bad;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new StatsFormatError('not read: it is a symbolic link');
    throw err;
  }
  try {
    const st = fstatSync(fd);
    const swapped =
      st.ino !== before.ino || st.dev !== before.dev ? new StatsFormatError('not read: the file was replaced while opening it') : null;
    const err = swapped ?? notAStatsFile(st);
    if (err) throw err;
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * Reads a stats file with the seqlock protocol: one full copy, then a copy of the header and the slots up
 * to the last live one, compared with the first; on disagreement the newer full copy becomes the
 * candidate. Returns the last result (consistent: false) if writers never paused within maxAttempts.
 */
export function readStatsFile(path: string, opts: ReadOptions = {}): StatsSnapshot {
  const attempts = Math.max(2, opts.maxAttempts ?? 16);
  const fd = openStatsFile(path);
  try {
    const bufs = [Buffer.allocUnsafe(STATS_V1.fileSize), Buffer.allocUnsafe(STATS_V1.fileSize)];
    const copy = (b: Buffer, len: number): Buffer => b.subarray(0, readSync(fd, b, 0, len, 0));
    let prev = copy(bufs[0]!, STATS_V1.fileSize);
    if (prev.length < STATS_V1.fileSize) return parseStats(prev); // throws the format error
    for (let i = 1; i < attempts; i++) {
      const check = copy(bufs[i % 2]!, coveredLength(prev));
      if (quietBetween(prev, check)) return parseStats(prev);
      const next = copy(bufs[i % 2]!, STATS_V1.fileSize);
      if (i === attempts - 1) return mergeCopies(parseStats(prev), parseStats(next));
      prev = next;
    }
    return parseStats(prev); /* not reached */
  } finally {
    closeSync(fd);
  }
}

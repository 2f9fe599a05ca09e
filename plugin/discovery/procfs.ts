/**
 * Readers of <proc-root>: host memory (meminfo) and the NVIDIA driver's per-GPU information file,
 * which names the model, the GPU UUID and the device minor (which /dev/nvidia<minor> is which GPU)
 * without NVML.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DriverGpuInfo, Problem } from './types.ts';

const UUID_RE = /^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Largest MemTotal believed: 4 PiB, the most physical memory x86-64 (52-bit physical addresses, 5-level
 * paging) and arm64 can address. It also keeps every byte count derived from it (budget, capacity) below
 * 2^53, where JavaScript numbers are exact.
 */
export const MAX_HOST_MEMORY_BYTES = 2 ** 52;

/**
 * MemTotal of a meminfo text, in bytes; or null with the reason. Strict: exactly one MemTotal line, a
 * whole number of kB, above 0 and at most MAX_HOST_MEMORY_BYTES. A wrong number here becomes the node's
 * spill budget, so doubt means 0 (no spill), not a guess.
 */
export function parseMemTotal(text: string): { bytes: number } | { bytes: null; reason: string } {
  const lines = text.split('\n').filter((l) => l.startsWith('MemTotal:'));
  if (lines.length === 0) return { bytes: null, reason: 'no "MemTotal:" line' };
  if (lines.length > 1) return { bytes: null, reason: `${lines.length} "MemTotal:" lines; expected one` };
  const m = /^MemTotal:[ \t]+([0-9]{1,20}) kB$/.exec(lines[0]!);
  if (!m) return { bytes: null, reason: `cannot parse ${JSON.stringify(lines[0]!.slice(0, 60))}; expected "MemTotal: <n> kB"` };
  const kb = BigInt(m[1]!);
  if (kb === 0n) return { bytes: null, reason: 'MemTotal is 0 kB' };
  if (kb * 1024n > BigInt(MAX_HOST_MEMORY_BYTES))
    return {
      bytes: null,
      reason: `MemTotal ${m[1]} kB is more than ${MAX_HOST_MEMORY_BYTES / 1024 ** 5} PiB, more than any machine can address`,
    };
  return { bytes: Number(kb) * 1024 };
}

/** MemTotal in bytes, or null plus a Problem. */
export function readHostMemory(procRoot: string, problems: Problem[]): number | null {
  const file = join(procRoot, 'meminfo');
  let text: string;
  try {
    text = readFileSync(file, 'latin1');
  } catch (err) {
    problems.push({ subject: file, message: `unreadable (${(err as NodeJS.ErrnoException).code ?? String(err)}); host spill budget is 0` });
    return null;
  }
  const r = parseMemTotal(text);
  if (r.bytes === null) {
    problems.push({ subject: file, message: `${r.reason}; host spill budget is 0` });
    return null;
  }
  return r.bytes;
}

/** Parses the driver's `information` file; unknown or malformed fields become null plus a Problem. */
export function parseNvidiaInformation(text: string, subject: string, problems: Problem[]): DriverGpuInfo {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) fields.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  const model = fields.get('Model');
  const uuid = fields.get('GPU UUID');
  const minor = fields.get('Device Minor');
  const info: DriverGpuInfo = { uuid: null, name: null, minor: null, memoryBytes: null };
  if (model && model.length <= 96 && /^[\x20-\x7e]+$/.test(model)) info.name = model;
  else problems.push({ subject, message: 'no usable "Model:" line' });
  if (uuid && UUID_RE.test(uuid)) info.uuid = uuid;
  else problems.push({ subject, message: `no valid "GPU UUID:" line${uuid ? ` (got ${JSON.stringify(uuid.slice(0, 60))})` : ''}` });
  if (minor && /^[0-9]{1,3}$/.test(minor) && Number(minor) < 256) info.minor = Number(minor);
  else problems.push({ subject, message: `no valid "Device Minor:" line${minor ? ` (got ${JSON.stringify(minor.slice(0, 20))})` : ''}` });
  return info;
}

/** Reads <procRoot>/driver/nvidia/gpus/<address>/information; null when the file does not exist. */
export function readNvidiaInformation(procRoot: string, address: string, problems: Problem[]): DriverGpuInfo | null {
  const file = join(procRoot, 'driver', 'nvidia', 'gpus', address, 'information');
  let text: string;
  try {
    text = readFileSync(file, 'latin1');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') problems.push({ subject: file, message: `unreadable (${code ?? String(err)})` });
    return null;
  }
  return parseNvidiaInformation(text, file, problems);
}

/**
 * The kernel module's version from <procRoot>/driver/nvidia/version ("NVRM version: NVIDIA UNIX x86_64 Kernel
 * Module  580.95.05  ..."): what NVML's driver version reports too, readable without NVML. Null when there is
 * no driver or the line has no version (not a problem: the version is only a DRA attribute).
 */
export function readDriverVersion(procRoot: string): string | null {
  let text: string;
  try {
    text = readFileSync(join(procRoot, 'driver', 'nvidia', 'version'), 'latin1');
  } catch {
    return null;
  }
  return parseDriverVersion(text);
}

export function parseDriverVersion(text: string): string | null {
  const line = text.split('\n').find((l) => l.startsWith('NVRM version:'));
  const m = line ? /Kernel Module(?: for [a-z0-9_]+)?\s+([0-9]+\.[0-9]+(?:\.[0-9]+)?)\s/.exec(`${line} `) : null;
  return m ? m[1]! : null;
}

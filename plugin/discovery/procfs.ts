/**
 * Readers of <proc-root>: host memory (meminfo) and the NVIDIA driver's per-GPU information file,
 * which names the model, the GPU UUID and the device minor (which /dev/nvidia<minor> is which GPU)
 * without NVML.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DriverGpuInfo, Problem } from './types.ts';

const UUID_RE = /^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

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
  const m = /^MemTotal:\s+([0-9]{1,15}) kB$/m.exec(text);
  if (!m) {
    problems.push({ subject: file, message: 'no valid "MemTotal: <n> kB" line; host spill budget is 0' });
    return null;
  }
  return Number(m[1]) * 1024;
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

/**
 * This machine's NVIDIA driver user space, found as the dynamic linker would: a GPU listed in
 * /proc/driver/nvidia and both libraries in ldconfig's cache. `emuv run` preloads the interposer over it;
 * the demos mount it into the workload as the NVIDIA container toolkit would.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

export interface HostDriver {
  libcuda: string;
  libnvml: string;
}

function ldconfigPath(soname: string): string | null {
  try {
    const out = execFileSync('ldconfig', ['-p'], { encoding: 'utf8' });
    const m = new RegExp(`\\s${soname.replace(/\./g, '\\.')} \\(.*x86-64.*\\) => (\\S+)`).exec(out);
    return m ? m[1]! : null;
  } catch {
    return null;
  }
}

/** The real driver when this machine has an NVIDIA GPU, else null. */
export function hostDriver(): HostDriver | null {
  try {
    if (readdirSync('/proc/driver/nvidia/gpus').length === 0) return null;
  } catch {
    return null;
  }
  const libcuda = ldconfigPath('libcuda.so.1');
  const libnvml = ldconfigPath('libnvidia-ml.so.1');
  return libcuda && libnvml ? { libcuda, libnvml } : null;
}

/** Small helpers shared by tests: polling and the flags of a test node's agent. */
import { join } from 'node:path';

export async function waitUntil(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await predicate()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Flags of `emuv plugin` for a test node: the fixture's roots, everything else under `dir`, no NVML,
 * no metrics, no PodResources, no node status. `extra` comes last, and a later flag wins.
 */
export function agentFlags(
  roots: { sys: string; proc: string; dev: string },
  dir: string,
  devicePluginDir: string,
  ...extra: string[]
): string[] {
  return [
    '--node-status=off',
    `--sys-root=${roots.sys}`,
    `--proc-root=${roots.proc}`,
    `--dev-root=${roots.dev}`,
    `--host-dev-dir=${roots.dev}`,
    `--device-plugin-dir=${devicePluginDir}`,
    `--state-dir=${join(dir, 'state')}`,
    `--interposer-dir=${join(dir, 'interposer')}`,
    `--interposer-source=${join(dir, 'no-libs')}`,
    '--nvml-library=off',
    '--metrics-addr=off',
    '--pod-resources-socket=off',
    ...extra,
  ];
}

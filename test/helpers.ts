/** Small helpers shared by tests: temp dirs, fixture copies, polling. */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const NODE_FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'nodes');
/**
 * The Node 24 binary npm installed (the `node` dev dependency), whatever node runs the tests: the
 * machine's own may be older and unable to run TypeScript sources or the Kubernetes client.
 */
export const NODE_BIN = existsSync(join(REPO_ROOT, 'node_modules', '.bin', 'node'))
  ? join(REPO_ROOT, 'node_modules', '.bin', 'node')
  : process.execPath;

export function tempDir(prefix = 'emuv-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Copies a node fixture (sys, proc, dev) into `dest`, keeping its symlinks as they are. */
export function copyNodeFixture(name: string, dest: string): { sys: string; proc: string; dev: string } {
  cpSync(join(NODE_FIXTURES, name), dest, { recursive: true, verbatimSymlinks: true });
  return { sys: join(dest, 'sys'), proc: join(dest, 'proc'), dev: join(dest, 'dev') };
}

export async function waitUntil(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await predicate()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Runs `emuv` (the sources, on Node 24) without blocking this process's event loop, so that servers
 * the test runs in-process (an agent, a stand-in kubelet) keep answering the child.
 */
export function runEmuv(args: string[], timeoutMs = 20_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(NODE_BIN, [join(REPO_ROOT, 'plugin', 'main.ts'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
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

/** This machine's NVIDIA driver: its GPUs are listed in /proc and ldconfig knows both user-space libraries. */
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

/** The real driver when this machine has an NVIDIA GPU, else null (the demos then simulate one). */
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

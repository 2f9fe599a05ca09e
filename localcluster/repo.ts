// Where things are in this checkout, and the few helpers every local run of emuv needs: the repository root,
// the node fixtures, the pinned Node 24 binary, temporary directories, and `emuv` run from its sources.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REPO_ROOT = join(import.meta.dirname, '..');
export const NODE_FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'nodes');
/**
 * The Node 24 binary npm installed (the `node` dev dependency), whatever node runs this: the machine's own
 * may be older and unable to run TypeScript sources or the Kubernetes client.
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

/**
 * Runs `emuv` (the sources, on Node 24) without blocking this process's event loop, so that servers
 * this process runs (an agent, a stand-in kubelet) keep answering the child.
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

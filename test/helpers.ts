/** Small helpers shared by tests: temp dirs, fixture copies, polling. */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const NODE_FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'nodes');
/** The Node 24 binary npm installed (the machine's own node may be older). */
export const NODE_BIN = process.execPath;

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

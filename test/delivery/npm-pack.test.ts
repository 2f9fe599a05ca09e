// `npm pack` as a person without a clone would use it: the tarball holds the bundle, the prebuilt interposer for
// linux-x64 and no sources; installed into an empty prefix (its one runtime dependency, koffi, from the
// registry), its `emuv` runs `emuv run` on the simulated driver and the command sees 28 GiB.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, tempDir } from '../../localcluster/index.ts';

const tmp = tempDir('emuv-npm-pack-');
const BIN_DIR = join(REPO_ROOT, 'node_modules', '.bin');
// npm and the installed `emuv` (#!/usr/bin/env node) run on the pinned Node 24.
const env = { ...process.env, PATH: `${BIN_DIR}:${process.env.PATH ?? ''}`, npm_config_audit: 'false', npm_config_fund: 'false' };
let tarball = '';
let files: string[] = [];

beforeAll(() => {
  // prepack builds the bundle and the native libraries first.
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', tmp.path], { cwd: REPO_ROOT, env, encoding: 'utf8' });
  const [info] = JSON.parse(out.slice(out.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  tarball = join(tmp.path, info!.filename);
  files = info!.files.map((f) => f.path).sort();
}, 300_000);
afterAll(() => tmp.cleanup());

describe('npm pack', () => {
  it('holds the bundle, the protos, the prebuilt interposer for linux-x64 and the docs of `emuv run`; no sources', () => {
    expect(files).toContain('dist/emuv.mjs');
    expect(files).toContain('dist/dra/v1/api.proto');
    expect(files).toContain('native/build/lib/libemuv-cuda.so');
    expect(files).toContain('native/build/lib/libemuv-nvml.so');
    expect(files).toContain('docs/run.md');
    expect(files.filter((f) => /\.(ts|c|h)$/.test(f) || f.startsWith('test/') || f.startsWith('localcluster/'))).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
    // Where the prebuilt libraries do not fit, npm refuses the install (EBADPLATFORM) rather than failing later.
    expect(pkg.os).toEqual(['linux']);
    expect(pkg.cpu).toEqual(['x64']);
    // Everything else is in the bundle: installing the package brings one dependency.
    expect(Object.keys(pkg.dependencies as object)).toEqual(['koffi']);
  });

  it('installs into an empty prefix, and its emuv runs a CUDA program that sees 28 GiB on the simulated 8 GiB card', () => {
    const prefix = join(tmp.path, 'prefix');
    mkdirSync(prefix);
    execFileSync('npm', ['install', '--prefix', prefix, '--no-save', tarball], { env, encoding: 'utf8', stdio: 'pipe', timeout: 240_000 });
    const emuv = join(prefix, 'node_modules', '.bin', 'emuv');
    const sim = join(REPO_ROOT, 'native', 'build', 'sim');
    const out = execFileSync(
      emuv,
      [
        'run',
        '--limit',
        '28Gi',
        '--driver-lib',
        join(sim, 'libcuda.so.1'),
        '--state-dir',
        join(tmp.path, 'state'),
        '--',
        join(REPO_ROOT, 'native/build/examples/vram-demo'),
      ],
      {
        env: { ...env, EMUV_SIM_VRAM: '8Gi', EMUV_SIM_STATE: join(tmp.path, 'sim'), TMPDIR: tmp.path },
        encoding: 'utf8',
        input: '',
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    expect(out).toContain('card: cuMemGetInfo total 28.0 GiB free 28.0 GiB; cuDeviceTotalMem 28.0 GiB; NVML total 28.0 GiB');
    expect(out).toContain('allocated 20 x 1 GiB through cuMemAlloc');
    // The installed package carries its own interposer, which `emuv run` finds beside its bundle.
    for (const lib of ['libemuv-cuda.so', 'libemuv-nvml.so'])
      expect(existsSync(join(prefix, 'node_modules', 'emuv', 'native', 'build', 'lib', lib)), lib).toBe(true);
  }, 300_000);
});

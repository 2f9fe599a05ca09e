// The Dockerfile built for real: buildah (Debian's, no daemon) builds it FROM local copies of its base images,
// as `docker build .` would from the registry's, and the result is run. The delivery test and the demo then
// import this same image into the node's containerd (its layer cache makes their build a cache hit).
// Root and buildah are what this needs, not the cluster: it sits in the cluster project for those.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildah,
  buildEmuvImage,
  dockerfileEntrypoint,
  loadCluster,
  REPO_ROOT,
  tempDir,
  type Buildah,
  type ImageFacts,
} from '../../localcluster/index.ts';

const info = loadCluster();
const out = tempDir('emuv-image-build-');
let image: ImageFacts;
let b: Buildah;
let ctr = '';

/** Runs `argv` in a container of the built image, as the image's own user (buildah run keeps the config's). */
function inImage(argv: string[]): { ok: boolean; out: string } {
  try {
    return { ok: true, out: b.run(['run', '--isolation', 'chroot', ctr, '--', ...argv]) };
  } catch (e) {
    return { ok: false, out: (e as Error).message };
  }
}

describe('the emuv image, built from the Dockerfile by buildah', () => {
  beforeAll(() => {
    image = buildEmuvImage(out.path, {
      cacheDir: info.paths.cacheDir,
      runDir: info.paths.runDir,
      log: (l) => (/^\[\d+\/\d+\] STEP|^making base image/.test(l) ? console.log(`[image] ${l}`) : undefined),
    });
    console.log(
      `[image] ${image.layers} layers, ${(image.sizeBytes / 1e6).toFixed(1)} MB, ${(image.compressedBytes / 1e6).toFixed(1)} MB compressed, built in ${image.buildSeconds.toFixed(0)} s`,
    );
    b = buildah(info.paths.cacheDir, info.paths.runDir);
    ctr = b.run(['from', '--pull-never', 'emuv.local/emuv:dev']).trim();
  }, 1_200_000);

  afterAll(() => {
    if (ctr) b.run(['rm', ctr]);
    out.cleanup();
  });

  it('declares the non-root user, the Dockerfile entrypoint and the package version', () => {
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(image.user).toBe('65532:65532');
    expect(image.entrypoint).toEqual(dockerfileEntrypoint(readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8')));
    expect(image.labels['org.opencontainers.image.version']).toBe(pkg.version);
    // The base: distroless (one layer) plus the runtime stage's COPY layers; gzip makes it smaller.
    expect(image.layers).toBeGreaterThanOrEqual(3);
    expect(image.compressedBytes).toBeLessThan(image.sizeBytes);
  });

  it('runs as that user, who cannot change /app', () => {
    const r = inImage([
      'node',
      '-e',
      "const fs=require('fs');let w='writable';try{fs.accessSync('/app',fs.constants.W_OK)}catch{w='read-only'}console.log(process.getuid()+':'+process.getgid(),fs.statSync('/app').uid,w)",
    ]);
    expect(r).toEqual({ ok: true, out: '65532:65532 0 read-only\n' });
  });

  it('runs emuv: the bundle and koffi load in the image (emuv discover, no GPU here)', () => {
    const r = inImage(['node', '/app/dist/emuv.mjs', 'discover']);
    expect(r.ok, r.out).toBe(true);
    expect(r.out).toMatch(/No NVIDIA GPU found/);
    expect(r.out).toMatch(/^NVML: not loaded/m);
  });

  it('carries the interposer libraries the agent installs on nodes, and no shell', () => {
    const r = inImage(['node', '-e', "console.log(require('fs').readdirSync('/app/native/build/lib').sort().join(' '))"]);
    expect(r.out.trim().split(' ')).toEqual(expect.arrayContaining(['libemuv-cuda.so', 'libemuv-nvml.so']));
    expect(inImage(['/bin/sh', '-c', 'true']).ok).toBe(false);
  });

  it('holds nothing of the build machine: no CA bundle or npmrc mounted for the build steps', () => {
    const r = inImage([
      'node',
      '-e',
      "const fs=require('fs');console.log(['/usr/local/share/ca-certificates','/usr/local/etc/npmrc','/src'].filter(p=>fs.existsSync(p)).join(',')||'none')",
    ]);
    expect(r).toEqual({ ok: true, out: 'none\n' });
  });
});

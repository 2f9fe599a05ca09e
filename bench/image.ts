/**
 * The emuv image: size, layer count and where the bytes go, from the real build (the Dockerfile built by buildah
 * FROM local copies of its bases, localcluster/images/; root, buildah and debootstrap from setup-host.sh).
 * Measured in one run:
 *   - the image as the Dockerfile builds it (runtime on gcr.io/distroless/cc-debian12:nonroot), per layer
 *     (uncompressed, and gzip-compressed as a registry stores and a node pulls it);
 *   - baseline: the same Dockerfile with the runtime stage FROM debian:bookworm (a Debian base, as the
 *     node:*-bookworm-slim images use), built from the same cached stages;
 *   - a rebuild with nothing changed (every stage a layer-cache hit): what the demo and the tests pay per run.
 * Writes bench/results/image.json. Usage: npm exec -- node bench/image.ts
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildah,
  buildEmuvImage,
  buildImage,
  DEBIAN_IMAGE,
  EMUV_IMAGE,
  paths,
  REPO_ROOT,
  RUNTIME_IMAGE,
  tempDir,
  type ImageFacts,
} from '../localcluster/index.ts';
import { machine } from './lib.ts';

const p = paths();
const out = tempDir('emuv-bench-image-');
const opts = { cacheDir: p.cacheDir, runDir: out.path, log: (l: string) => (/^making base image/.test(l) ? console.log(l) : undefined) };
const mb = (n: number) => Math.round(n / 1e4) / 100;

try {
  const first = buildEmuvImage(out.path, opts);
  const rebuild = buildEmuvImage(out.path, opts);
  const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const variant = dockerfile.replace(`FROM ${RUNTIME_IMAGE}`, 'FROM debian:bookworm');
  if (variant === dockerfile) throw new Error(`the Dockerfile has no "FROM ${RUNTIME_IMAGE}" to vary`);
  const variantFile = join(out.path, 'Dockerfile.debian-runtime');
  writeFileSync(variantFile, variant);
  const baseline = buildImage(out.path, opts, variantFile, 'emuv.local/emuv:bench-debian-runtime');

  // The base's layers carry the base's own history (its last step); they are named by the base instead.
  const b = buildah(p.cacheDir, out.path);
  const baseLayers = (ref: string) =>
    (JSON.parse(b.run(['inspect', '--type', 'image', ref])) as { OCIv1: { rootfs: { diff_ids: string[] } } }).OCIv1.rootfs.diff_ids.length;
  const summary = (f: ImageFacts, base: string, fromBase = baseLayers(base)) => ({
    layers: f.layers,
    sizeMB: mb(f.sizeBytes),
    compressedMB: mb(f.compressedBytes),
    perLayer: f.perLayer.map((l, i) => ({
      createdBy:
        i < fromBase
          ? `FROM ${base}`
          : l.createdBy
              .replace(/^\/bin\/sh -c #\(nop\) /, '')
              .replace(/\s+/g, ' ')
              .slice(0, 120),
      sizeMB: mb(l.bytes),
      compressedMB: mb(l.compressedBytes),
    })),
  });
  const result = {
    benchmark: 'image',
    date: new Date().toISOString(),
    machine: machine(),
    image: EMUV_IMAGE,
    builder: 'buildah bud (Debian 12 buildah 1.28), overlay storage, chroot isolation',
    distroless: summary(first, RUNTIME_IMAGE),
    baselineDebianRuntime: summary(baseline, DEBIAN_IMAGE),
    ratio: {
      size: Math.round((first.sizeBytes / baseline.sizeBytes) * 1000) / 1000,
      compressed: Math.round((first.compressedBytes / baseline.compressedBytes) * 1000) / 1000,
    },
    user: first.user,
    buildSeconds: { first: first.buildSeconds, basesMadeInFirst: first.basesMade, unchangedRebuild: rebuild.buildSeconds },
  };
  mkdirSync(join(REPO_ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(REPO_ROOT, 'bench/results/image.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
} finally {
  out.cleanup();
}

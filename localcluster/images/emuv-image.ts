// The images the local cluster runs. The emuv image is the Dockerfile, built for real by buildah (`buildah bud`,
// as `docker build` would) FROM local copies of its base images (base-images.ts), then pushed to an OCI archive
// for the node's containerd: what the demo and the delivery test run is what a user's `docker build .` makes.
//
// Also the demo's workload image: native/examples/vram-demo with, where the NVIDIA container toolkit would
// inject the driver, the SIMULATED driver (native/build/sim). Its name says so. It is not a Dockerfile
// product, so it is packed directly (oci-archive.ts) from the local build.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../repo.ts';
import { ensureBaseImages } from './base-images.ts';
import { buildah, haveBuildah, removeWorkingContainers } from './buildah.ts';
import { buildOciArchive } from './oci-archive.ts';

export const EMUV_IMAGE_REPOSITORY = 'emuv.local/emuv';
export const EMUV_IMAGE_TAG = 'dev';
export const EMUV_IMAGE = `${EMUV_IMAGE_REPOSITORY}:${EMUV_IMAGE_TAG}`;
export const WORKLOAD_IMAGE = 'emuv.local/vram-demo:simulated-driver';
/** Where the NVIDIA container toolkit puts libcuda.so.1 in a container (the chart's agent.driverLibDir). */
export const DRIVER_LIB_DIR = '/usr/lib/x86_64-linux-gnu';

/** What the built image is, read back from buildah's store (docs/benchmarks.md records these). */
export interface ImageFacts {
  archive: string;
  id: string;
  /** Uncompressed size of all layers, bytes (what `docker images` shows). */
  sizeBytes: number;
  /** Compressed size as a registry stores it (gzip of each layer), bytes. */
  compressedBytes: number;
  layers: number;
  perLayer: LayerSize[];
  user: string;
  entrypoint: string[];
  labels: Record<string, string>;
  /** The base images made in this build (empty when all were cached). */
  basesMade: string[];
  buildSeconds: number;
}

/** Copies `bin` and every shared library it loads (ldd) into `rootfs` at the same paths. */
function copyWithLibraries(bin: string, rootfs: string, dest: string): void {
  mkdirSync(path.dirname(path.join(rootfs, dest)), { recursive: true });
  copyFileSync(realpathSync(bin), path.join(rootfs, dest));
  chmodSync(path.join(rootfs, dest), 0o755);
  copyLibrariesOf(bin, rootfs);
}

/** Copies every shared library `bin` loads (ldd) into `rootfs` at the same paths. */
function copyLibrariesOf(bin: string, rootfs: string): void {
  const ldd = execFileSync('ldd', [bin], { encoding: 'utf8' });
  for (const line of ldd.split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (!m) continue;
    const lib = m[1]!;
    const target = path.join(rootfs, lib);
    if (existsSync(target)) continue;
    mkdirSync(path.dirname(target), { recursive: true });
    copyFileSync(realpathSync(lib), target);
  }
}

function freshRootfs(dir: string): string {
  rmSync(dir, { recursive: true, force: true });
  for (const sub of ['dev', 'proc', 'sys', 'etc', 'tmp', 'run']) mkdirSync(path.join(dir, sub), { recursive: true });
  chmodSync(path.join(dir, 'tmp'), 0o1777);
  return dir;
}

/**
 * Builds the Dockerfile with buildah into its store (tag emuv.local/emuv:dev) and pushes it to
 * `<dir>/emuv.oci.tar`. RUN steps run chrooted in their stage with the host's network (npm and Debian's archive
 * are reachable); npm's and apt's download caches are mounted from <cache>/images so a changed lockfile does
 * not fetch everything again. Unchanged stages are layer-cache hits.
 */
export function buildEmuvImage(dir: string, opts: BuildOptions): ImageFacts {
  return buildImage(dir, opts, path.join(REPO_ROOT, 'Dockerfile'), EMUV_IMAGE);
}

export interface BuildOptions {
  cacheDir: string;
  runDir: string;
  log?: (line: string) => void;
}

/**
 * Builds `dockerfileFile` (the repository's, or a variant of it: bench/image.ts) with the repository as context,
 * tags it `tag` and pushes it to `<dir>/<name>.oci.tar`.
 */
export function buildImage(dir: string, opts: BuildOptions, dockerfileFile: string, tag: string): ImageFacts {
  const started = Date.now();
  const log = opts.log ?? (() => {});
  if (!haveBuildah()) throw new Error('buildah is not installed: localcluster/cluster/setup-host.sh installs it (Debian package buildah)');
  const b = buildah(opts.cacheDir, opts.runDir);
  removeWorkingContainers(b);
  const dockerfile = readFileSync(dockerfileFile, 'utf8');
  const basesMade = ensureBaseImages(b, dockerfile, opts.cacheDir, path.join(dir, 'bases'), log);
  const version = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const npmCache = path.join(opts.cacheDir, 'images', 'npm-cache');
  const aptCache = path.join(opts.cacheDir, 'images', 'apt-archives');
  mkdirSync(path.join(aptCache, 'partial'), { recursive: true });
  mkdirSync(npmCache, { recursive: true });
  mkdirSync(dir, { recursive: true });
  b.run(
    [
      'bud',
      '--isolation',
      'chroot',
      '--pull-never',
      '--force-rm',
      '--layers',
      '--build-arg',
      `VERSION=${version}`,
      '-v',
      `${npmCache}:/root/.npm`,
      '-v',
      `${aptCache}:/var/cache/apt/archives`,
      ...hostTrust(dir),
      '-f',
      dockerfileFile,
      '-t',
      tag,
      REPO_ROOT,
    ],
    { log },
  );
  const archive = path.join(dir, `${tag.replace(/^.*\//, '').replace(/[^a-z0-9.]+/gi, '-')}.oci.tar`);
  rmSync(archive, { force: true });
  b.run(['push', '--format', 'oci', tag, `oci-archive:${archive}:${tag}`]);
  const facts = inspectImage(b, tag, archive);
  return { ...facts, basesMade, buildSeconds: (Date.now() - started) / 1000 };
}

/**
 * RUN steps fetch over TLS (npm from its registry, pip from PyPI). Where this machine's network re-signs TLS
 * with a CA of its own, only the host's CA bundle knows it: it is mounted for the build steps alone, where
 * Debian's update-ca-certificates (the native stage) and npm's global npmrc (the js stage) pick it up. Mounts
 * are not layers: nothing of this machine's trust reaches the runtime stage, which has no RUN.
 */
function hostTrust(dir: string): string[] {
  const bundle = '/etc/ssl/certs/ca-certificates.crt';
  if (!existsSync(bundle)) return [];
  const ca = '/usr/local/share/ca-certificates/emuv-build-host.crt';
  const npmrc = path.join(dir, 'build-npmrc');
  writeFileSync(npmrc, `cafile=${ca}\n`);
  return ['-v', `${bundle}:${ca}:ro`, '-v', `${npmrc}:/usr/local/etc/npmrc:ro`];
}

function inspectImage(b: ReturnType<typeof buildah>, ref: string, archive: string): Omit<ImageFacts, 'basesMade' | 'buildSeconds'> {
  const info = JSON.parse(b.run(['inspect', '--type', 'image', ref])) as {
    FromImageID: string;
    OCIv1: { config: { User?: string; Entrypoint?: string[]; Labels?: Record<string, string> } };
  };
  return {
    archive,
    id: info.FromImageID,
    ...layerSizes(archive),
    user: info.OCIv1.config.User ?? '',
    entrypoint: info.OCIv1.config.Entrypoint ?? [],
    labels: info.OCIv1.config.Labels ?? {},
  };
}

/** One layer of an image archive: the instruction that made it (the config's history) and its sizes. */
export interface LayerSize {
  createdBy: string;
  bytes: number;
  compressedBytes: number;
}

/**
 * Layer count and sizes from the pushed archive (an OCI layout in a tar, layers gzip-compressed as a registry
 * stores them): compressed is what a node pulls, uncompressed what it unpacks to disk. Each layer is named by
 * the history entry that made it, which is what says where the bytes go.
 */
export function layerSizes(archive: string): { layers: number; compressedBytes: number; sizeBytes: number; perLayer: LayerSize[] } {
  const work = `${archive}.read`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  try {
    execFileSync('tar', ['-xf', archive, '-C', work]);
    const blob = (digest: string) => path.join(work, 'blobs', ...digest.split(':'));
    const index = JSON.parse(readFileSync(path.join(work, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    if (index.manifests.length !== 1) throw new Error(`${archive} holds ${index.manifests.length} manifests, expected 1`);
    const manifest = JSON.parse(readFileSync(blob(index.manifests[0]!.digest), 'utf8')) as {
      config: { digest: string };
      layers: { digest: string; size: number; mediaType: string }[];
    };
    const config = JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8')) as {
      history?: { created_by?: string; empty_layer?: boolean }[];
    };
    const makers = (config.history ?? []).filter((h) => !h.empty_layer).map((h) => h.created_by ?? '');
    const perLayer = manifest.layers.map((l, i) => ({
      createdBy: makers.length === manifest.layers.length ? makers[i]! : '',
      bytes: l.mediaType.endsWith('+gzip') ? gunzippedSize(blob(l.digest)) : l.size,
      compressedBytes: l.size,
    }));
    return {
      layers: perLayer.length,
      compressedBytes: perLayer.reduce((n, l) => n + l.compressedBytes, 0),
      sizeBytes: perLayer.reduce((n, l) => n + l.bytes, 0),
      perLayer,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function gunzippedSize(file: string): number {
  return Number(execFileSync('sh', ['-c', 'gzip -dc "$1" | wc -c', 'sh', file], { encoding: 'utf8' }).trim());
}

/**
 * The demo workload with the simulated driver where the NVIDIA runtime would put the real one. With
 * `realLibcuda` (a machine with a GPU) the image also holds the system libraries that driver loads, so the
 * real libcuda.so.1 mounted over the simulated one finds them.
 */
export function buildWorkloadImage(dir: string, realLibcuda?: string): string {
  // What it is made of: the demo program and the simulated driver (the emuv image builds its own, in buildah).
  execFileSync('make', ['-C', path.join(REPO_ROOT, 'native'), '-s', 'all'], { stdio: 'pipe' });
  const rootfs = freshRootfs(path.join(dir, 'workload-rootfs'));
  const build = path.join(REPO_ROOT, 'native/build');
  copyWithLibraries(path.join(build, 'examples/vram-demo'), rootfs, '/vram-demo');
  for (const lib of ['libcuda.so.1', 'libnvidia-ml.so.1'])
    copyWithLibraries(path.join(build, 'sim', lib), rootfs, path.join(DRIVER_LIB_DIR, lib));
  if (realLibcuda) copyLibrariesOf(realLibcuda, rootfs);
  const archive = path.join(dir, 'workload.oci.tar');
  buildOciArchive(
    {
      rootfs,
      name: WORKLOAD_IMAGE,
      entrypoint: ['/vram-demo'],
      env: ['PATH=/'],
      labels: { 'org.opencontainers.image.description': 'emuv demo workload on the SIMULATED CUDA driver (native/build/sim)' },
    },
    archive,
  );
  return archive;
}

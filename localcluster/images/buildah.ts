// buildah, Debian's daemonless OCI image builder, the way the local cluster uses it: `buildah bud` builds a
// Dockerfile as `docker build` would, with every RUN in a chroot of the build stage (no daemon, no registry).
// Its image store is one of the cluster's caches (<cache>/buildah, overlay driver), so layers survive between
// runs: a second build of an unchanged Dockerfile stage is a cache hit, and a base image is made only once
// per recipe (base-images.ts).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';

export interface Buildah {
  /** buildah's global flags: the image store and its run state, never the host's /var/lib/containers. */
  readonly globalArgs: string[];
  /** Runs buildah; throws with its stderr on failure. `log` receives its output line by line when given. */
  run(args: string[], opts?: { log?: (line: string) => void }): string;
  /** The ID of the local image `ref`, or undefined when there is none. */
  imageId(ref: string): string | undefined;
  /** The image store's directory (state kept beside it belongs to the store). */
  readonly root: string;
}

/** A store above this size is dropped before the next build (old layers and remade bases pile up in it). */
const STORE_CAP_BYTES = 8 * 1024 ** 3;

export function buildah(cacheDir: string, runDir: string): Buildah {
  const root = path.join(cacheDir, 'buildah', 'storage');
  const runroot = path.join(runDir, 'buildah-run');
  if (existsSync(root) && duBytes(root) > STORE_CAP_BYTES) {
    // The cache is rebuilt from scratch (a few minutes); the base-image records go with it.
    rmSync(path.join(cacheDir, 'buildah'), { recursive: true, force: true });
  }
  mkdirSync(root, { recursive: true });
  mkdirSync(runroot, { recursive: true });
  const globalArgs = ['--root', root, '--runroot', runroot, '--storage-driver', 'overlay'];
  return {
    globalArgs,
    run(args, opts = {}) {
      const r = spawnSync('buildah', [...globalArgs, ...args], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        maxBuffer: 256 << 20,
      });
      // A build's output reaches the log when it has finished (one build step's lines are few and come fast).
      if (opts.log) for (const line of `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')) if (line.trim() !== '') opts.log(line);
      if (r.status !== 0) {
        const tail = `${opts.log ? r.stdout : ''}${r.stderr ?? ''}`.trim().slice(-4000);
        throw new Error(`buildah ${args.join(' ')} failed (exit ${r.status ?? r.signal}): ${tail || r.error?.message}`);
      }
      return r.stdout;
    },
    imageId(ref) {
      const r = spawnSync('buildah', [...globalArgs, 'inspect', '--type', 'image', '--format', '{{.FromImageID}}', ref], {
        encoding: 'utf8',
      });
      return r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : undefined;
    },
    root,
  };
}

function duBytes(dir: string): number {
  const r = spawnSync('du', ['-sb', dir], { encoding: 'utf8' });
  return Number(r.stdout.split('\t')[0] ?? 0);
}

/**
 * Removes every working container in the store. Builds run with --force-rm, but a build that was killed leaves
 * its containers, and a stale one can stand in for a stage of the next build (seen: COPY --from a stage that
 * "has no /rootfs"). The store is emuv's own; only while no other buildah runs, so a concurrent build keeps its.
 */
export function removeWorkingContainers(b: Buildah): void {
  const others = spawnSync('pgrep', ['-x', 'buildah'], { encoding: 'utf8' }).stdout.trim();
  if (others === '') b.run(['rm', '--all']);
}

/** Whether buildah is installed (setup-host.sh installs Debian's). */
export function haveBuildah(): boolean {
  return spawnSync('buildah', ['--version'], { encoding: 'utf8' }).status === 0;
}

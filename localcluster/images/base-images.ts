// The base images the Dockerfile's FROM lines name, made locally (no registry is reachable here) and stored in
// buildah's image store under those public names, so `buildah bud` builds the Dockerfile exactly as written:
//   docker.io/library/debian:bookworm        debootstrap --variant=minbase from Debian's archive
//   docker.io/library/node:24-bookworm       that + binutils + the pinned Node 24 binary + npm (bases/node.Containerfile)
//   gcr.io/distroless/cc-debian12:nonroot    Debian 12's runtime libraries, no shell (bases/distroless-cc.Containerfile)
// Each is recorded beside buildah's store with the hash of its recipe (the Containerfile, the versions, the
// recipe's inputs) and its image ID: an image whose record matches is reused, any other is remade. (A record,
// not a label: labels are inherited, and the emuv image would carry its bases' bookkeeping.) The downloads are cached by version under
// <cache>/images (debootstrap's .debs, the npm tarball).
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../repo.ts';
import type { Buildah } from './buildah.ts';
import { externalBases } from './dockerfile.ts';

/** npm as Node.js 24.21.0 bundles it (its changelog: "upgrade npm to 11.19.0"); the `node` package has only the binary. */
export const NPM_VERSION = '11.19.0';
const DEBIAN_SUITE = 'bookworm';
const DEBIAN_MIRROR = 'http://deb.debian.org/debian';
const BASES_DIR = path.join(import.meta.dirname, 'bases');

export const DEBIAN_IMAGE = 'docker.io/library/debian:bookworm';
export const NODE_IMAGE = 'docker.io/library/node:24-bookworm';
export const RUNTIME_IMAGE = 'gcr.io/distroless/cc-debian12:nonroot';

/** The Node version the repository pins (package.json devDependencies.node): the one every npm script runs on. */
export function pinnedNodeVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  const v = pkg.devDependencies.node;
  if (!v || !/^\d+\.\d+\.\d+$/.test(v)) throw new Error(`package.json pins node as "${v}"; an exact version is expected`);
  return v;
}

interface Recipe {
  /** Everything the image is made from; its hash is the image's cache key. */
  inputs: string[];
  make(b: Buildah, work: string, log: (l: string) => void): void;
}

const sha = (parts: string[]) => createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 16);
const containerfile = (name: string) => readFileSync(path.join(BASES_DIR, name), 'utf8');

function recipes(cacheDir: string): Record<string, Recipe> {
  const nodeVersion = pinnedNodeVersion();
  return {
    [DEBIAN_IMAGE]: {
      inputs: ['debootstrap', '--variant=minbase', DEBIAN_SUITE, DEBIAN_MIRROR],
      make(b, work, log) {
        const rootfs = path.join(work, 'rootfs');
        const debs = path.join(cacheDir, 'images', `debootstrap-${DEBIAN_SUITE}`);
        mkdirSync(debs, { recursive: true });
        log(`debootstrap --variant=minbase ${DEBIAN_SUITE} (packages cached in ${debs})`);
        execFileSync('debootstrap', ['--variant=minbase', `--cache-dir=${debs}`, DEBIAN_SUITE, rootfs, DEBIAN_MIRROR], {
          stdio: ['ignore', 'pipe', 'pipe'],
          maxBuffer: 64 << 20,
        });
        // As Debian's published image: no package lists, no downloaded packages, nothing in /dev, /proc, /sys.
        for (const d of ['var/lib/apt/lists', 'var/cache/apt/archives', 'dev', 'proc', 'sys', 'run', 'tmp']) {
          const dir = path.join(rootfs, d);
          for (const e of existsSync(dir) ? readdirSync(dir) : [])
            if (e !== 'partial' && e !== 'lock') rmSync(path.join(dir, e), { recursive: true, force: true });
        }
        const ctr = b.run(['from', 'scratch']).trim();
        try {
          const mnt = b.run(['mount', ctr]).trim();
          // cp -a: owners, modes (setuid, sticky /tmp) and links exactly as debootstrap left them.
          execFileSync('cp', ['-a', `${rootfs}/.`, `${mnt}/`]);
          b.run(['umount', ctr]);
          b.run(['config', '--env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '--cmd', 'bash', ctr]);
          b.run(['commit', '--rm', ctr, DEBIAN_IMAGE]);
        } catch (e) {
          b.run(['rm', ctr]);
          throw e;
        }
      },
    },
    [NODE_IMAGE]: {
      inputs: [containerfile('node.Containerfile'), nodeVersion, NPM_VERSION],
      make(b, work, log) {
        const npmTgz = npmTarball(cacheDir);
        mkdirSync(work, { recursive: true });
        execFileSync('tar', ['-xzf', npmTgz, '-C', work]);
        renameSync(path.join(work, 'package'), path.join(work, 'npm'));
        copyFileSync(realpathSync(nodeBinary(nodeVersion)), path.join(work, 'node'));
        log(`node ${nodeVersion} + npm ${NPM_VERSION} on ${DEBIAN_IMAGE}`);
        bud(b, work, 'node.Containerfile', NODE_IMAGE, log);
      },
    },
    [RUNTIME_IMAGE]: {
      inputs: [containerfile('distroless-cc.Containerfile')],
      make(b, work, log) {
        mkdirSync(work, { recursive: true });
        log(`Debian 12 runtime libraries on ${DEBIAN_IMAGE}`);
        bud(b, work, 'distroless-cc.Containerfile', RUNTIME_IMAGE, log);
      },
    },
  };
}

function bud(b: Buildah, context: string, file: string, tag: string, log: (l: string) => void): void {
  b.run(
    ['bud', '--isolation', 'chroot', '--pull-never', '--force-rm', '--layers=false', '-f', path.join(BASES_DIR, file), '-t', tag, context],
    {
      log,
    },
  );
}

/** node_modules' Node binary, checked to be the pinned version (a stale install would bake in another). */
function nodeBinary(version: string): string {
  const bin = path.join(REPO_ROOT, 'node_modules', 'node', 'bin', 'node');
  const actual = existsSync(bin) ? execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim() : 'missing';
  if (actual !== `v${version}`) throw new Error(`node_modules/node/bin/node is ${actual}, package.json pins ${version}: run npm ci`);
  return bin;
}

/** npm's own package from the npm registry, cached by version. */
function npmTarball(cacheDir: string): string {
  const dir = path.join(cacheDir, 'images', `npm-${NPM_VERSION}`);
  const tgz = path.join(dir, `npm-${NPM_VERSION}.tgz`);
  if (existsSync(tgz)) return tgz;
  mkdirSync(dir, { recursive: true });
  const npm = path.join(REPO_ROOT, 'node_modules', '.bin', 'npm');
  execFileSync(existsSync(npm) ? npm : 'npm', ['pack', `npm@${NPM_VERSION}`, '--pack-destination', dir], { stdio: 'pipe' });
  if (!existsSync(tgz)) throw new Error(`npm pack npm@${NPM_VERSION} did not write ${tgz}`);
  return tgz;
}

/**
 * Makes every base image `dockerfile` needs that is missing from buildah's store or was made from another
 * recipe. Throws when the Dockerfile names a base this file has no recipe for (the two must agree).
 */
export function ensureBaseImages(b: Buildah, dockerfile: string, cacheDir: string, workDir: string, log: (l: string) => void): string[] {
  const all = recipes(cacheDir);
  const needed = externalBases(dockerfile);
  const unknown = needed.filter((n) => !(n in all));
  if (unknown.length > 0) {
    throw new Error(`the Dockerfile builds FROM ${unknown.join(', ')}, which localcluster/images/base-images.ts cannot make: add a recipe`);
  }
  // The node and runtime bases are made FROM debian: it comes first whenever anything is needed.
  const order = [DEBIAN_IMAGE, ...needed.filter((n) => n !== DEBIAN_IMAGE)];
  const made: string[] = [];
  const recordFile = path.join(b.root, '..', 'base-images.json');
  const records = (existsSync(recordFile) ? JSON.parse(readFileSync(recordFile, 'utf8')) : {}) as Record<
    string,
    { recipe: string; id: string }
  >;
  const debianKey = sha([DEBIAN_IMAGE, ...all[DEBIAN_IMAGE]!.inputs]);
  for (const name of order) {
    const recipe = all[name]!;
    // An image made FROM debian is remade when debian is.
    const key = name === DEBIAN_IMAGE ? debianKey : sha([name, ...recipe.inputs, debianKey]);
    const id = b.imageId(name);
    if (id !== undefined && records[name]?.recipe === key && records[name]?.id === id) continue;
    const work = path.join(workDir, name.replace(/[^a-z0-9]+/gi, '-'));
    rmSync(work, { recursive: true, force: true });
    log(`making base image ${name} (recipe ${key})`);
    recipe.make(b, work, log);
    rmSync(work, { recursive: true, force: true });
    records[name] = { recipe: key, id: b.imageId(name) ?? '' };
    writeFileSync(recordFile, `${JSON.stringify(records, null, 2)}\n`);
    made.push(name);
  }
  return made;
}

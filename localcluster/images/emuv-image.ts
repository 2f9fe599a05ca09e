// The emuv image, built without a container engine from the same recipe and the same build outputs as
// the Dockerfile: its runtime stage is read here (LABEL, WORKDIR, COPY, ENV, USER, ENTRYPOINT) and
// replayed onto a root filesystem, so the two cannot drift apart. Where the Dockerfile copies from a build
// stage, this copies the local build output of the same path (`/src/<p>` is `<repo>/<p>`: `npm run build`
// makes dist/, `make -C native` the libraries). The base image's part, the Node 24 runtime at
// /usr/local/bin/node, is the pinned node binary plus the shared libraries it loads.
//
// Also the demo's workload image: native/examples/vram-demo with, where the NVIDIA container toolkit would
// inject the driver, the SIMULATED driver (native/build/sim). Its name says so.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../repo.ts';
import { buildOciArchive } from './oci-archive.ts';

export const EMUV_IMAGE_REPOSITORY = 'emuv.local/emuv';
export const EMUV_IMAGE_TAG = 'dev';
export const EMUV_IMAGE = `${EMUV_IMAGE_REPOSITORY}:${EMUV_IMAGE_TAG}`;
export const WORKLOAD_IMAGE = 'emuv.local/vram-demo:simulated-driver';
/** Where the NVIDIA container toolkit puts libcuda.so.1 in a container (the chart's agent.driverLibDir). */
export const DRIVER_LIB_DIR = '/usr/lib/x86_64-linux-gnu';

/** The runtime stage of a Dockerfile, as far as this builder replays it. */
export interface RuntimeStage {
  labels: Record<string, string>;
  workingDir: string;
  /** `dest` is absolute; `intoDir` when it was written with a trailing slash (Docker: copy into it). */
  copies: { from?: string; src: string; dest: string; intoDir: boolean }[];
  env: Record<string, string>;
  user?: string;
  entrypoint: string[];
}

/** Joins continuation lines and drops comments; one instruction per element. */
function instructions(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && cur === '')) continue;
    if (line.endsWith('\\')) {
      cur += `${line.slice(0, -1)} `;
      continue;
    }
    cur += line;
    if (cur.trim() !== '') out.push(cur.trim());
    cur = '';
  }
  return out;
}

/** `k="v" k2=v2` (LABEL/ENV); values may be double-quoted. */
function pairs(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([A-Za-z0-9_.\-/]+)=("((?:[^"\\]|\\.)*)"|\S+)/g;
  let m: RegExpExecArray | null;
  let consumed = '';
  while ((m = re.exec(s)) !== null) {
    out[m[1]!] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[2]!;
    consumed += m[0];
  }
  if (consumed.replace(/\s/g, '') !== s.replace(/\s/g, '')) throw new Error(`cannot read key=value pairs in: ${s}`);
  return out;
}

/**
 * Parses the last stage of `dockerfile`. Strict: an instruction this builder does not replay (RUN in the
 * runtime stage, ADD, VOLUME, ...) is an error, so a Dockerfile change cannot be silently left out here.
 */
export function parseRuntimeStage(dockerfile: string): RuntimeStage {
  const all = instructions(dockerfile);
  const lastFrom = all.map((i) => /^FROM\s/i.test(i)).lastIndexOf(true);
  if (lastFrom < 0) throw new Error('Dockerfile has no FROM');
  const stage: RuntimeStage = { labels: {}, workingDir: '/', copies: [], env: {}, entrypoint: [] };
  const args: Record<string, string> = {};
  const expand = (s: string) =>
    s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, n: string) => {
      if (!(n in args)) throw new Error(`Dockerfile uses \${${n}} without an ARG default`);
      return args[n]!;
    });
  for (const ins of all.slice(lastFrom + 1)) {
    const [, op = '', rest = ''] = /^(\S+)\s+([\s\S]*)$/.exec(ins) ?? [];
    switch (op.toUpperCase()) {
      case 'ARG': {
        const [name, def] = rest.split('=', 2);
        if (def === undefined) throw new Error(`ARG ${name} needs a default here`);
        args[name!] = def;
        break;
      }
      case 'LABEL':
        Object.assign(stage.labels, Object.fromEntries(Object.entries(pairs(rest)).map(([k, v]) => [k, expand(v)])));
        break;
      case 'ENV':
        Object.assign(stage.env, pairs(rest));
        break;
      case 'WORKDIR':
        stage.workingDir = path.posix.resolve(stage.workingDir, rest);
        break;
      case 'USER':
        stage.user = rest;
        break;
      case 'ENTRYPOINT':
        stage.entrypoint = JSON.parse(rest) as string[];
        break;
      case 'COPY': {
        const words = rest.split(/\s+/);
        const from = words[0]?.startsWith('--from=') ? words.shift()!.slice('--from='.length) : undefined;
        if (words.some((w) => w.startsWith('--')) || words.length !== 2) throw new Error(`unsupported COPY: ${ins}`);
        stage.copies.push({
          from,
          src: words[0]!,
          dest: path.posix.resolve(stage.workingDir, words[1]!),
          intoDir: words[1]!.endsWith('/'),
        });
        break;
      }
      default:
        throw new Error(`the image builder does not replay "${op}" in the Dockerfile's runtime stage: ${ins}`);
    }
  }
  if (stage.entrypoint.length === 0) throw new Error('the runtime stage has no ENTRYPOINT');
  return stage;
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

/** Builds what the images are made of: the JavaScript bundle and the native libraries. */
export function buildOutputs(nodeBin: string): void {
  execFileSync(nodeBin, [path.join(REPO_ROOT, 'scripts/build.mjs')], { cwd: REPO_ROOT, stdio: 'pipe' });
  execFileSync('make', ['-C', path.join(REPO_ROOT, 'native'), '-s', 'all'], { stdio: 'pipe' });
}

/** The emuv image (the Dockerfile's runtime stage) as an OCI archive in `dir`. */
export function buildEmuvImage(dir: string, nodeBin: string): string {
  const stage = parseRuntimeStage(readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8'));
  const rootfs = freshRootfs(path.join(dir, 'emuv-rootfs'));
  // The base image's Node runtime.
  copyWithLibraries(nodeBin, rootfs, '/usr/local/bin/node');
  for (const c of stage.copies) {
    const local = c.from ? c.src.replace(/^\/src\//, '') : c.src;
    const src = path.join(REPO_ROOT, local);
    if (!existsSync(src)) throw new Error(`the Dockerfile copies ${c.src}, but ${src} is missing: run npm run build and make -C native`);
    // Docker: a directory's contents go to dest; a file goes into dest when dest ends in a slash.
    const dest = path.join(rootfs, !statSync(src).isDirectory() && c.intoDir ? path.join(c.dest, path.basename(local)) : c.dest);
    mkdirSync(path.dirname(dest), { recursive: true });
    cpSync(src, dest, { recursive: true, dereference: true });
  }
  writeFileSyncIn(rootfs, 'etc/passwd', 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n');
  writeFileSyncIn(rootfs, 'etc/group', 'root:x:0:\nnonroot:x:65532:\n');
  const env = { PATH: '/usr/local/bin:/usr/bin:/bin', ...stage.env };
  const archive = path.join(dir, 'emuv.oci.tar');
  buildOciArchive(
    {
      rootfs,
      name: EMUV_IMAGE,
      entrypoint: stage.entrypoint,
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      user: stage.user,
      workingDir: stage.workingDir,
      labels: stage.labels,
    },
    archive,
  );
  return archive;
}

/**
 * The demo workload with the simulated driver where the NVIDIA runtime would put the real one. With
 * `realLibcuda` (a machine with a GPU) the image also holds the system libraries that driver loads, so the
 * real libcuda.so.1 mounted over the simulated one finds them.
 */
export function buildWorkloadImage(dir: string, realLibcuda?: string): string {
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

function writeFileSyncIn(rootfs: string, rel: string, text: string): void {
  mkdirSync(path.dirname(path.join(rootfs, rel)), { recursive: true });
  writeFileSync(path.join(rootfs, rel), text);
}

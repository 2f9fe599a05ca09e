// Clean-up of a run directory's leftovers, for a crashed run and for the normal teardown alike
// ("run-dir convention"): every process whose command line names the run directory (our daemons and
// containerd's shims), every process in the kubelet's cgroup root (the containers) and those cgroups, the pod
// network namespaces the run created, every mount at or from the run directory, our own network namespace
// and veth, the kubelet's log symlinks into the run directory, and last the run directory itself. It reads
// only the machine's state and files in the run directory, never this process's memory, so it works after
// a crash.
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CGROUP_ROOT, DEVICE_PLUGIN_DIR, NETNS, VETH_HOST, paths, type Paths } from './layout.ts';
import { allPids, cmdline, killAndWait, run, waitFor } from './process.ts';

interface MountEntry {
  root: string;
  point: string;
}

function mounts(): MountEntry[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(' ');
      const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
      return { root: unescape(f[3] ?? ''), point: unescape(f[4] ?? '') };
    });
}

const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);

function ourMounts(p: Paths): MountEntry[] {
  return mounts().filter(
    (m) => under(m.point, p.runDir) || under(m.root, p.runDir) || (m.point === DEVICE_PLUGIN_DIR && under(m.root, p.runDir)),
  );
}

/** The kubelet's cgroup root in every hierarchy (v1: one per controller; v2: one). */
function cgroupDirs(): string[] {
  const base = '/sys/fs/cgroup';
  if (!existsSync(base)) return [];
  const out: string[] = [];
  for (const c of readdirSync(base)) {
    const d = path.join(base, c, CGROUP_ROOT);
    if (existsSync(d)) out.push(d);
  }
  if (existsSync(path.join(base, CGROUP_ROOT))) out.push(path.join(base, CGROUP_ROOT));
  return out;
}

function walkCgroups(dir: string, out: string[] = []): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries) {
    const child = path.join(dir, e);
    try {
      if (lstatSync(child).isDirectory()) walkCgroups(child, out);
    } catch {
      /* raced with removal */
    }
  }
  out.push(dir); // children first
  return out;
}

/** Every process in the kubelet's cgroup root: the containers of the cluster's pods. */
export function cgroupPids(): number[] {
  const pids = new Set<number>();
  for (const root of cgroupDirs()) {
    for (const dir of walkCgroups(root)) {
      try {
        for (const l of readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (l) pids.add(Number(l));
      } catch {
        /* gone */
      }
    }
  }
  return [...pids];
}

function listNetns(): string[] {
  return existsSync('/run/netns') ? readdirSync('/run/netns') : [];
}

const netnsBefore = (p: Paths) => path.join(p.runDir, 'netns-before.json');

/**
 * Records the network namespaces that exist before the cluster starts, so that clean-up deletes only the
 * pod namespaces this run created (containerd pins them as /run/netns/cni-*, names not ours).
 */
export function recordNetns(p: Paths): void {
  writeFileSync(netnsBefore(p), JSON.stringify(listNetns()));
}

/**
 * Whether a command line names `dir` or a path below it, as a whole path: `/tmp/emuv-cluster/etcd` does, and
 * `/tmp/emuv-cluster-logs/x` or a lock file `/tmp/emuv-cluster.lock` (a `flock` waiting to run the tests) do not.
 */
export function namesDir(cmd: string, dir: string): boolean {
  const d = dir.replace(/\/+$/, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(?:^|[\\s=:,])${d}(?:/|[\\s:,]|$)`).test(cmd);
}

/** Removes everything a previous run with the same run directory left behind. Safe when there is nothing. */
export async function cleanupStale(p: Paths = paths(), log: (s: string) => void = () => {}): Promise<void> {
  const self = new Set([process.pid, process.ppid]);
  const byCmdline = allPids().filter((pid) => !self.has(pid) && namesDir(cmdline(pid), p.runDir));
  if (byCmdline.length > 0) log(`stopping ${byCmdline.length} leftover process(es) of ${p.runDir}`);
  // Daemons first (so the kubelet does not restart containers while we kill them), then the containers.
  await killAndWait(byCmdline, 'leftover cluster processes', 5_000);
  const inCgroups = cgroupPids();
  if (inCgroups.length > 0) log(`killing ${inCgroups.length} leftover container process(es) in cgroup ${CGROUP_ROOT}`);
  for (const pid of inCgroups) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await waitFor('container processes to exit', 15_000, () => cgroupPids().length === 0 || undefined);
  for (const root of cgroupDirs()) {
    for (const dir of walkCgroups(root)) {
      try {
        rmdirSync(dir);
      } catch {
        /* busy or gone; retried next run */
      }
    }
  }

  // Pod network namespaces created by the previous run.
  if (existsSync(netnsBefore(p))) {
    const known = new Set(JSON.parse(readFileSync(netnsBefore(p), 'utf8')) as string[]);
    for (const ns of listNetns()) {
      if (!ns.startsWith('cni-') || known.has(ns)) continue;
      if (run('ip', ['netns', 'pids', ns], { allowFail: true }).trim() !== '') continue;
      run('ip', ['netns', 'delete', ns], { allowFail: true });
    }
  }

  // Mounts at or from the run directory (pod volumes, overlay rootfs, the device-plugin bind mount), deepest first.
  for (let i = 0; i < 3; i++) {
    const ms = ourMounts(p).sort((a, b) => b.point.length - a.point.length);
    if (ms.length === 0) break;
    for (const m of ms) run('umount', ['-l', m.point], { allowFail: true });
  }
  const left = ourMounts(p);
  if (left.length > 0) {
    throw new Error(`cannot unmount ${left.map((m) => m.point).join(', ')}; refusing to delete ${p.runDir}`);
  }

  if (listNetns().includes(NETNS)) run('ip', ['netns', 'delete', NETNS]);
  run('ip', ['link', 'delete', VETH_HOST], { allowFail: true });

  // Log symlinks the kubelet writes to the fixed /var/log/containers.
  if (existsSync('/var/log/containers')) {
    for (const e of readdirSync('/var/log/containers')) {
      const f = path.join('/var/log/containers', e);
      try {
        if (lstatSync(f).isSymbolicLink() && under(readlinkSync(f), p.runDir)) rmSync(f);
      } catch {
        /* raced */
      }
    }
  }
  rmSync(p.runDir, { recursive: true, force: true });
}

// Host preparation: is this machine able to run the cluster (root, CNI plugins, tools, cgroups, what build.sh
// needs to build runc; containerd and runc themselves are build.sh's, not the host's), install what is missing
// (setup-host.sh, apt-get), and claim the machine, which holds one cluster at a time (its network namespace,
// addresses, cgroup root and device-plugin directory are fixed).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { OWNER_FILE, type Paths } from './layout.ts';
import { alive, allPids, cmdline } from './process.ts';

const SETUP_HOST = path.join(import.meta.dirname, 'setup-host.sh');

/** Throws an error naming the missing step when this machine cannot run the cluster. */
export function checkHost(): void {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('the cluster layer must run as root (network namespaces, mounts, cgroups)');
  const tools: Array<[string, string]> = [
    ['/usr/lib/cni/bridge', 'CNI plugins (containernetworking-plugins)'],
    ['/usr/lib/cni/host-local', 'CNI plugins (containernetworking-plugins)'],
    ['/usr/lib/cni/loopback', 'CNI plugins (containernetworking-plugins)'],
  ];
  for (const [file, what] of tools) if (!existsSync(file)) problems.push(`${what} missing (${file})`);
  // buildah and debootstrap: the emuv image is the Dockerfile built by buildah FROM bases debootstrap makes.
  for (const bin of ['ip', 'nsenter', 'openssl', 'gcc', 'tar', 'iptables', 'mount', 'umount', 'pkg-config', 'buildah', 'debootstrap']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) problems.push(`${bin} missing`);
  }
  // build.sh builds runc with seccomp (cgo); without the headers only that build would fail, much later.
  if (spawnSync('pkg-config', ['--exists', 'libseccomp']).status !== 0) problems.push('libseccomp-dev missing (runc build)');
  if (!existsSync('/sys/fs/cgroup/memory') && !existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    problems.push('no cgroup hierarchy under /sys/fs/cgroup');
  }
  if (problems.length > 0) {
    throw new Error(
      `cluster layer: this host is not prepared:\n  - ${problems.join('\n  - ')}\n` +
        `Run as root: localcluster/cluster/setup-host.sh   (installs CNI plugins, iptables, openssl, gcc, libseccomp-dev, buildah, debootstrap)`,
    );
  }
}

/**
 * checkHost(), and when that fails on a root machine, runs setup-host.sh (apt-get, idempotent) once and checks
 * again. EMUV_NO_HOST_SETUP=1 turns the automatic install off.
 */
export function prepareHost(log: (s: string) => void = () => {}): void {
  try {
    checkHost();
    return;
  } catch (e) {
    if (process.getuid?.() !== 0 || process.env.EMUV_NO_HOST_SETUP === '1') throw e;
    log(`host not prepared; running localcluster/cluster/setup-host.sh:\n${(e as Error).message}`);
  }
  runSetupHost();
  checkHost();
}

/** Runs setup-host.sh in the foreground (its apt-get output goes to this terminal). */
export function runSetupHost(): void {
  const r = spawnSync('bash', [SETUP_HOST], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    throw new Error(`cluster layer: localcluster/cluster/setup-host.sh failed (exit ${r.status}); run it as root to see why`);
  }
}

/**
 * Refuses to start while a cluster of another run directory is alive (its processes name that directory);
 * a dead one's leftovers are cleaned up by the next run of that directory, or here. Then records this run
 * directory and process as the machine's owner.
 */
export function claimMachine(p: Paths): void {
  if (existsSync(OWNER_FILE)) {
    const [other = '', ownerPid = ''] = readFileSync(OWNER_FILE, 'utf8').split('\n');
    const pid = Number(ownerPid);
    if (pid > 0 && pid !== process.pid && alive(pid)) {
      throw new Error(
        `another emuv test cluster run (pid ${pid}: ${cmdline(pid).slice(0, 120)}) is using this machine ` +
          `(run dir ${other}); wait for it to finish`,
      );
    }
    if (other && other !== p.runDir) {
      const live = allPids().filter((q) => q !== process.pid && cmdline(q).includes(other));
      if (live.length > 0) {
        throw new Error(
          `another emuv test cluster is running from ${other} (pids ${live.slice(0, 5).join(', ')}); ` +
            `stop it first: EMUV_RUN_DIR=${other} node_modules/.bin/node localcluster/cluster/cli.ts down`,
        );
      }
    }
  }
  writeFileSync(OWNER_FILE, `${p.runDir}\n${process.pid}\n`);
}

/** Gives the machine up, if this run directory holds it. */
export function releaseMachine(p: Paths): void {
  if (existsSync(OWNER_FILE) && readFileSync(OWNER_FILE, 'utf8').split('\n')[0] === p.runDir) rmSync(OWNER_FILE, { force: true });
}

// A real single-node Kubernetes on this machine, for tests and demos: etcd, kube-apiserver, kube-scheduler,
// kube-controller-manager, containerd and a kubelet, all built from upstream sources by build.sh (no Docker,
// no downloaded binaries).
//
// Layout. Everything lives under one run directory (EMUV_RUN_DIR, default /tmp/emuv-cluster); component logs
// go to EMUV_CLUSTER_LOG_DIR (default /tmp/emuv-cluster-logs), which survives teardown. The components run in
// a network namespace `emuv-cluster` that the harness creates: etcd and the control plane listen on its
// loopback; a veth pair gives the node a non-loopback address (NODE_IP) that the test process on the host
// reaches (HOST_IP is the host end). Only the network namespace is entered (nsenter --net): the mount
// namespace stays the host's, so the kubelet, containerd and the tests see the same mounts.
//
// State. The harness keeps no state in memory: pid files, the command line of every daemon and the cluster
// facts are files in the run directory (cluster.json), so a test worker can restart the kubelet that the
// vitest global setup started, and a later run can clean up after a crashed one.
//
// Crash safety ("run-dir convention"): cleanupStale() kills every process whose command line names the run
// directory (our daemons and containerd's shims), every process in the kubelet's cgroup root (/emuv-test, the
// containers), unmounts everything mounted at or from the run directory, deletes the pod network namespaces
// the previous run created and our own namespace, then removes the run directory.
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildOciArchive } from './images/oci-archive.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

export const NETNS = 'emuv-cluster';
export const NODE_NAME = 'emuv-node';
export const HOST_IP = '10.213.0.1';
export const NODE_IP = '10.213.0.2';
const VETH_HOST = 'emuv-h0';
const VETH_NODE = 'emuv-n0';
const POD_CIDR = '10.214.0.0/24';
const SERVICE_CIDR = '10.215.0.0/24';
const SERVICE_IP = '10.215.0.1';
const APISERVER_PORT = 6443;
/** The kubelet's cgroup root (cgroupfs driver); every container of the test cluster lives below it. */
export const CGROUP_ROOT = 'emuv-test';
/** The kubelet hard-codes its device plugin directory; the harness bind-mounts a run-dir folder onto it. */
export const DEVICE_PLUGIN_DIR = '/var/lib/kubelet/device-plugins';
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10';
export const PROBE_IMAGE = 'emuv.local/probe:1';

export interface Paths {
  runDir: string;
  logDir: string;
  cacheDir: string;
  certs: string;
  pids: string;
  kubeletRoot: string;
  containerd: string;
  clusterFile: string;
}

export function paths(): Paths {
  const runDir = path.resolve(process.env.EMUV_RUN_DIR ?? '/tmp/emuv-cluster');
  const logDir = path.resolve(process.env.EMUV_CLUSTER_LOG_DIR ?? `${runDir}-logs`);
  const cacheDir = path.resolve(process.env.EMUV_CACHE_DIR ?? path.join(process.env.HOME ?? '/root', '.cache/emuv'));
  return {
    runDir,
    logDir,
    cacheDir,
    certs: path.join(runDir, 'pki'),
    pids: path.join(runDir, 'pids'),
    kubeletRoot: path.join(runDir, 'kubelet'),
    containerd: path.join(runDir, 'containerd'),
    clusterFile: path.join(runDir, 'cluster.json'),
  };
}

export interface DaemonSpec {
  name: string;
  argv: string[];
  /** Run inside the cluster network namespace. */
  netns: boolean;
}

/** What a test needs to know about the running cluster; written to cluster.json. */
export interface ClusterInfo {
  paths: Paths;
  nodeName: string;
  nodeIP: string;
  server: string;
  /** Admin kubeconfig for clients on the host (server https://NODE_IP:6443). */
  kubeconfig: string;
  caFile: string;
  adminCert: string;
  adminKey: string;
  devicePluginDir: string;
  podResourcesSocket: string;
  kubernetesVersion: string;
  bin: { kubernetes: string; etcd: string; helm: string };
  daemons: Record<string, DaemonSpec>;
}

// ---------------------------------------------------------------------------------------------------------
// Small process helpers

function run(cmd: string, args: string[], opts: { allowFail?: boolean; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, maxBuffer: 64 << 20 });
  if (r.error) {
    if (opts.allowFail) return '';
    throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  }
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined> | T | undefined,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false && v !== null) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? `: last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

async function killAndWait(pids: number[], what: string, graceMs: number): Promise<void> {
  const live = pids.filter(alive);
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + graceMs;
  while (live.some(alive) && Date.now() < deadline) await sleep(100);
  for (const pid of live.filter(alive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  const hardDeadline = Date.now() + 10_000;
  while (live.some(alive) && Date.now() < hardDeadline) await sleep(100);
  const left = live.filter(alive);
  if (left.length > 0) throw new Error(`could not stop ${what}: pids ${left.join(', ')} still alive`);
}

// ---------------------------------------------------------------------------------------------------------
// Host checks and the build

/** Throws an error naming the missing step when this machine cannot run the cluster layer. */
export function checkHost(): void {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('the cluster layer must run as root (network namespaces, mounts, cgroups)');
  const tools: Array<[string, string]> = [
    ['/usr/bin/containerd', 'containerd'],
    ['/usr/sbin/runc', 'runc'],
    ['/usr/bin/ctr', 'ctr (containerd)'],
    ['/usr/lib/cni/bridge', 'CNI plugins (containernetworking-plugins)'],
    ['/usr/lib/cni/host-local', 'CNI plugins (containernetworking-plugins)'],
    ['/usr/lib/cni/loopback', 'CNI plugins (containernetworking-plugins)'],
  ];
  for (const [file, what] of tools) if (!existsSync(file)) problems.push(`${what} missing (${file})`);
  for (const bin of ['ip', 'nsenter', 'openssl', 'gcc', 'tar', 'iptables', 'mount', 'umount']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) problems.push(`${bin} missing`);
  }
  if (!existsSync('/sys/fs/cgroup/memory') && !existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    problems.push('no cgroup hierarchy under /sys/fs/cgroup');
  }
  if (problems.length > 0) {
    throw new Error(
      `cluster layer: this host is not prepared:\n  - ${problems.join('\n  - ')}\n` +
        `Run as root: test/cluster/setup-host.sh   (installs containerd, runc, CNI plugins, iptables, openssl, gcc)`,
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
    log(`host not prepared; running test/cluster/setup-host.sh:\n${(e as Error).message}`);
  }
  const r = spawnSync('bash', [path.join(here, 'setup-host.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    throw new Error(`cluster layer: test/cluster/setup-host.sh failed (exit ${r.status}); run it as root to see why`);
  }
  checkHost();
}

export function readVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path.join(here, 'build/versions.env'), 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(\S+)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** Runs build.sh (which returns at once when every binary is cached) and returns the binary directories. */
export function ensureBinaries(opts: { build: boolean }): { kubernetes: string; etcd: string; helm: string } {
  const script = path.join(here, 'build.sh');
  if (opts.build) {
    const r = spawnSync('bash', [script], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) {
      throw new Error(
        `cluster layer: test/cluster/build.sh failed (exit ${r.status}). It needs Go >= 1.25 and the Go module proxy; ` +
          `run it by hand to see why: test/cluster/build.sh`,
      );
    }
  }
  const r = spawnSync('bash', [script, '--print-dir'], { encoding: 'utf8' });
  const dirs = Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('=') as [string, string]),
  );
  if (r.status !== 0) {
    throw new Error(`cluster layer: binaries missing under ${paths().cacheDir}/bin; run test/cluster/build.sh first`);
  }
  return { kubernetes: dirs.KUBERNETES_BIN!, etcd: dirs.ETCD_BIN!, helm: dirs.HELM_BIN! };
}

// ---------------------------------------------------------------------------------------------------------
// Cleanup of this run directory's leftovers (a crashed run, or the normal teardown)

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

function cgroupPids(): number[] {
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

/**
 * The network namespace, addresses, cgroup root and device-plugin directory are per machine, so there can be one
 * test cluster per machine. Refuses to start while a cluster of another run directory is alive (its processes
 * name that directory); a dead one's leftovers are cleaned up by the next run of that directory, or here.
 */
const OWNER_FILE = '/run/emuv-test-cluster.owner';
function claimMachine(p: Paths) {
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
            `stop it first: EMUV_RUN_DIR=${other} node_modules/.bin/node test/cluster/harness.ts down`,
        );
      }
    }
  }
  writeFileSync(OWNER_FILE, `${p.runDir}\n${process.pid}\n`);
}

/** Removes everything a previous run with the same run directory left behind. Safe when there is nothing. */
export async function cleanupStale(p: Paths = paths(), log: (s: string) => void = () => {}): Promise<void> {
  const self = new Set([process.pid, process.ppid]);
  const byCmdline = allPids().filter((pid) => !self.has(pid) && cmdline(pid).includes(p.runDir));
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

  // Pod network namespaces created by the previous run (containerd 1.6 pins them as /run/netns/cni-*).
  const before = path.join(p.runDir, 'netns-before.json');
  if (existsSync(before)) {
    const known = new Set(JSON.parse(readFileSync(before, 'utf8')) as string[]);
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

// ---------------------------------------------------------------------------------------------------------
// Certificates and kubeconfigs (openssl)

function openssl(args: string[]) {
  run('openssl', args);
}

function issue(dir: string, name: string, subject: string, opts: { server?: string[]; client?: boolean }) {
  const key = path.join(dir, `${name}.key`);
  const crt = path.join(dir, `${name}.crt`);
  const ext = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${[opts.server ? 'serverAuth' : '', opts.client ? 'clientAuth' : ''].filter(Boolean).join(',')}`,
  ];
  if (opts.server) ext.push(`subjectAltName=${opts.server.join(',')}`);
  openssl([
    'req',
    '-x509',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    crt,
    '-subj',
    subject,
    '-days',
    '30',
    '-CA',
    path.join(dir, 'ca.crt'),
    '-CAkey',
    path.join(dir, 'ca.key'),
    ...ext.flatMap((e) => ['-addext', e]),
  ]);
}

function writeKubeconfig(file: string, server: string, ca: string, cert: string, key: string) {
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: emuv-test',
      '  cluster:',
      `    server: ${server}`,
      `    certificate-authority: ${ca}`,
      'users:',
      '- name: user',
      '  user:',
      `    client-certificate: ${cert}`,
      `    client-key: ${key}`,
      'contexts:',
      '- name: emuv-test',
      '  context: {cluster: emuv-test, user: user}',
      'current-context: emuv-test',
      '',
    ].join('\n'),
  );
}

function makePki(p: Paths) {
  const d = p.certs;
  mkdirSync(d, { recursive: true });
  openssl([
    'req',
    '-x509',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    path.join(d, 'ca.key'),
    '-out',
    path.join(d, 'ca.crt'),
    '-subj',
    '/CN=emuv-test-ca',
    '-days',
    '30',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
  ]);
  issue(d, 'apiserver', '/CN=kube-apiserver', {
    server: [
      'DNS:kubernetes',
      'DNS:kubernetes.default',
      'DNS:kubernetes.default.svc',
      'DNS:localhost',
      'IP:127.0.0.1',
      `IP:${NODE_IP}`,
      `IP:${SERVICE_IP}`,
    ],
  });
  issue(d, 'admin', '/O=system:masters/CN=emuv-admin', { client: true });
  issue(d, 'apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', { client: true });
  issue(d, 'scheduler', '/CN=system:kube-scheduler', { client: true });
  issue(d, 'controller-manager', '/CN=system:kube-controller-manager', { client: true });
  issue(d, 'kubelet', `/O=system:nodes/CN=system:node:${NODE_NAME}`, { client: true });
  issue(d, 'kubelet-serving', `/CN=${NODE_NAME}`, { server: [`DNS:${NODE_NAME}`, `IP:${NODE_IP}`] });
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', path.join(d, 'sa.key')]);
  openssl(['pkey', '-in', path.join(d, 'sa.key'), '-pubout', '-out', path.join(d, 'sa.pub')]);
  const ca = path.join(d, 'ca.crt');
  const local = `https://127.0.0.1:${APISERVER_PORT}`;
  for (const n of ['scheduler', 'controller-manager', 'kubelet']) {
    writeKubeconfig(path.join(d, `${n}.kubeconfig`), local, ca, path.join(d, `${n}.crt`), path.join(d, `${n}.key`));
  }
  writeKubeconfig(
    path.join(d, 'admin.kubeconfig'),
    `https://${NODE_IP}:${APISERVER_PORT}`,
    ca,
    path.join(d, 'admin.crt'),
    path.join(d, 'admin.key'),
  );
}

// ---------------------------------------------------------------------------------------------------------
// Daemons

function pidFile(p: Paths, name: string) {
  return path.join(p.pids, `${name}.pid`);
}

export function daemonPid(info: ClusterInfo, name: string): number | undefined {
  const f = pidFile(info.paths, name);
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, 'utf8').trim());
  const spec = info.daemons[name];
  if (!spec || !alive(pid) || !cmdline(pid).includes(spec.argv[0]!)) return undefined;
  return pid;
}

/** Starts a daemon described in cluster.json, detached, logging (appending) to <logDir>/<name>.log. */
export function startDaemon(info: ClusterInfo, name: string): number {
  const spec = info.daemons[name];
  if (!spec) throw new Error(`unknown daemon ${name}`);
  if (daemonPid(info, name) !== undefined) throw new Error(`${name} is already running`);
  const log = path.join(info.paths.logDir, `${name}.log`);
  const fd = openSync(log, 'a');
  writeFileSync(fd, `\n===== ${new Date().toISOString()} starting: ${spec.argv.join(' ')}\n`);
  const [cmd, ...args] = spec.netns ? ['nsenter', `--net=/run/netns/${NETNS}`, '--', ...spec.argv] : spec.argv;
  const child = spawn(cmd!, args, { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  child.unref();
  mkdirSync(info.paths.pids, { recursive: true });
  writeFileSync(pidFile(info.paths, name), `${child.pid}\n`);
  return child.pid;
}

export async function stopDaemon(info: ClusterInfo, name: string, graceMs = 10_000): Promise<void> {
  const pid = daemonPid(info, name);
  if (pid !== undefined) await killAndWait([pid], name, graceMs);
  rmSync(pidFile(info.paths, name), { force: true });
}

function logTail(info: ClusterInfo | Paths, name: string, lines = 30): string {
  const p = 'paths' in info ? info.paths : info;
  try {
    return readFileSync(path.join(p.logDir, `${name}.log`), 'utf8')
      .trimEnd()
      .split('\n')
      .slice(-lines)
      .join('\n');
  } catch {
    return '(no log)';
  }
}

async function waitDaemon(info: ClusterInfo, name: string, what: string, timeoutMs: number, probe: () => Promise<unknown> | unknown) {
  try {
    await waitFor(what, timeoutMs, async () => {
      if (daemonPid(info, name) === undefined) throw new Error(`${name} exited`);
      return (await probe()) ? true : undefined;
    });
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- last lines of ${info.paths.logDir}/${name}.log:\n${logTail(info, name)}`, { cause: e });
  }
}

// ---------------------------------------------------------------------------------------------------------
// A minimal Kubernetes REST client (client certificate auth, JSON)

/** A decoded Kubernetes JSON document; tests read whatever fields they assert on. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export class KubeError extends Error {
  readonly status: number;
  readonly body: string;
  constructor(status: number, body: string, what: string) {
    super(`${what}: HTTP ${status}: ${body.slice(0, 500)}`);
    this.status = status;
    this.body = body;
  }
}

export class Kube {
  private readonly agent: https.Agent;
  readonly info: ClusterInfo;
  constructor(info: ClusterInfo) {
    this.info = info;
    this.agent = new https.Agent({
      ca: readFileSync(info.caFile),
      cert: readFileSync(info.adminCert),
      key: readFileSync(info.adminKey),
      keepAlive: true,
    });
  }

  close() {
    this.agent.destroy();
  }

  async raw(method: string, apiPath: string, body?: unknown, contentType = 'application/json', timeoutMs = 30_000): Promise<string> {
    const url = new URL(apiPath, this.info.server);
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    return await new Promise<string>((resolve, reject) => {
      const req = https.request(
        url,
        {
          method,
          agent: this.agent,
          headers: {
            accept: 'application/json',
            ...(payload !== undefined ? { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) } : {}),
          },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if ((res.statusCode ?? 0) >= 300) reject(new KubeError(res.statusCode ?? 0, text, `${method} ${apiPath}`));
            else resolve(text);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${apiPath}: timed out`)));
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  async json<T = Json>(method: string, apiPath: string, body?: unknown, contentType?: string): Promise<T> {
    const text = await this.raw(method, apiPath, body, contentType);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  get<T = Json>(apiPath: string) {
    return this.json<T>('GET', apiPath);
  }

  node() {
    return this.get(`/api/v1/nodes/${this.info.nodeName}`);
  }

  /** JSON patch (RFC 6902) of the node's status subresource. */
  patchNodeStatus(ops: unknown[]) {
    return this.json('PATCH', `/api/v1/nodes/${this.info.nodeName}/status`, ops, 'application/json-patch+json');
  }

  async ensureNamespace(name: string): Promise<void> {
    try {
      await this.json('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    } catch (e) {
      if (!(e instanceof KubeError && e.status === 409)) throw e;
    }
    // Pods need the namespace's default ServiceAccount (made by the controller-manager).
    await waitFor(`serviceaccount ${name}/default`, 60_000, async () => {
      try {
        return await this.get(`/api/v1/namespaces/${name}/serviceaccounts/default`);
      } catch (e) {
        if (e instanceof KubeError && e.status === 404) return undefined;
        throw e;
      }
    });
  }

  /** Deletes the namespace and waits until it is gone (its pods stopped by the kubelet). */
  async deleteNamespace(name: string, timeoutMs = 120_000): Promise<void> {
    try {
      await this.json('DELETE', `/api/v1/namespaces/${name}`);
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) return;
      throw e;
    }
    await waitFor(`namespace ${name} to be deleted`, timeoutMs, async () => {
      try {
        await this.get(`/api/v1/namespaces/${name}`);
        return undefined;
      } catch (e) {
        if (e instanceof KubeError && e.status === 404) return true;
        throw e;
      }
    });
  }

  createPod(ns: string, pod: unknown) {
    return this.json('POST', `/api/v1/namespaces/${ns}/pods`, pod);
  }

  pod(ns: string, name: string) {
    return this.get(`/api/v1/namespaces/${ns}/pods/${name}`);
  }

  podLog(ns: string, name: string, container?: string) {
    const q = container ? `?container=${encodeURIComponent(container)}` : '';
    return this.raw('GET', `/api/v1/namespaces/${ns}/pods/${name}/log${q}`);
  }

  async waitPodPhase(ns: string, name: string, phase: string, timeoutMs = 120_000): Promise<Json> {
    let last: Json;
    try {
      return await waitFor(
        `pod ${ns}/${name} to be ${phase}`,
        timeoutMs,
        async () => {
          last = await this.pod(ns, name);
          if (last?.status?.phase === 'Failed' && phase !== 'Failed') throw new Error(`pod failed: ${JSON.stringify(last.status)}`);
          return last?.status?.phase === phase ? last : undefined;
        },
        500,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}\npod status: ${JSON.stringify(last?.status ?? null)}`, { cause: e });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Configuration files

function containerdConfig(p: Paths): string {
  const c = p.containerd;
  return `version = 2
root = "${c}/root"
state = "${c}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "${c}/containerd.sock"

[ttrpc]
  address = "${c}/containerd.sock.ttrpc"

[debug]
  address = "${c}/debug.sock"
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "${c}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  enable_selinux = false
  # This host lets even root not lower oom_score_adj (no CAP_SYS_RESOURCE): the pause sandbox asks for -998.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
        Root = "${c}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${p.runDir}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${c}/certs.d"
`;
}

function cniConfig(p: Paths): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: 'emuv-test',
      plugins: [
        {
          type: 'bridge',
          bridge: 'emuv-cni0',
          isGateway: true,
          // Pods of the chart (agent, operator) talk to the apiserver at the node address.
          isDefaultGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: { type: 'host-local', ranges: [[{ subnet: POD_CIDR }]], dataDir: `${p.runDir}/cni/ipam` },
        },
      ],
    },
    null,
    2,
  );
}

function kubeletConfig(p: Paths): string {
  const d = p.certs;
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /${CGROUP_ROOT}
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
containerRuntimeEndpoint: unix://${p.containerd}/containerd.sock
failSwapOn: false
address: ${NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: ${d}/kubelet-serving.crt
tlsPrivateKeyFile: ${d}/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: ${d}/ca.crt}
authorization:
  mode: AlwaysAllow
podLogsDir: ${p.runDir}/pod-logs
resolvConf: /etc/resolv.conf
registerNode: true
maxPods: 30
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
  imagefs.inodesFree: 1%
evictionPressureTransitionPeriod: 5s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 24h
serializeImagePulls: false
nodeStatusUpdateFrequency: 10s
nodeStatusReportFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 10s
shutdownGracePeriod: 0s
`;
}

function setupCgroupRoot() {
  const base = '/sys/fs/cgroup';
  for (const c of readdirSync(base)) {
    const parent = path.join(base, c);
    if (!lstatSync(parent).isDirectory()) continue;
    const dir = path.join(parent, CGROUP_ROOT);
    mkdirSync(dir, { recursive: true });
    if (c === 'cpuset') {
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        writeFileSync(path.join(dir, f), readFileSync(path.join(parent, f), 'utf8'));
      }
    }
  }
}

function setupNetwork() {
  run('ip', ['netns', 'add', NETNS]);
  run('ip', ['-n', NETNS, 'link', 'set', 'lo', 'up']);
  run('ip', ['link', 'add', VETH_HOST, 'type', 'veth', 'peer', 'name', VETH_NODE, 'netns', NETNS]);
  run('ip', ['addr', 'add', `${HOST_IP}/30`, 'dev', VETH_HOST]);
  run('ip', ['link', 'set', VETH_HOST, 'up']);
  run('ip', ['-n', NETNS, 'addr', 'add', `${NODE_IP}/30`, 'dev', VETH_NODE]);
  run('ip', ['-n', NETNS, 'link', 'set', VETH_NODE, 'up']);
  // Pods are reachable from the host (the agent's /metrics and /status, as from a monitoring system):
  // the node forwards between its veth and the pod bridge; the route goes away with the veth.
  run('ip', ['netns', 'exec', NETNS, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  run('ip', ['route', 'add', POD_CIDR, 'via', NODE_IP, 'dev', VETH_HOST]);
}

function buildImages(p: Paths): string[] {
  const dir = path.join(p.runDir, 'images');
  const out: string[] = [];
  for (const [prog, name] of [
    ['pause', PAUSE_IMAGE],
    ['probe', PROBE_IMAGE],
  ] as const) {
    const rootfs = path.join(dir, `${prog}-rootfs`);
    for (const sub of ['dev', 'proc', 'sys', 'etc', 'tmp']) mkdirSync(path.join(rootfs, sub), { recursive: true });
    run('gcc', ['-static', '-O2', '-Wall', '-o', path.join(rootfs, prog), path.join(here, 'images', `${prog}.c`)]);
    const archive = path.join(dir, `${prog}.oci.tar`);
    buildOciArchive({ rootfs, name, entrypoint: [`/${prog}`] }, archive);
    out.push(archive);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Bring-up and teardown

export function loadCluster(p: Paths = paths()): ClusterInfo {
  if (!existsSync(p.clusterFile)) {
    throw new Error(`no cluster running (missing ${p.clusterFile}); the cluster project's globalSetup starts it`);
  }
  return JSON.parse(readFileSync(p.clusterFile, 'utf8')) as ClusterInfo;
}

export interface StartOptions {
  /** Run build.sh first (returns at once when cached). Default: true unless EMUV_SKIP_BUILD=1. */
  build?: boolean;
  log?: (s: string) => void;
}

export async function startCluster(opts: StartOptions = {}): Promise<ClusterInfo> {
  const log = opts.log ?? ((s: string) => console.log(`[cluster] ${s}`));
  const t0 = Date.now();
  prepareHost(log);
  const bin = ensureBinaries({ build: opts.build ?? process.env.EMUV_SKIP_BUILD !== '1' });
  const p = paths();
  claimMachine(p);
  await cleanupStale(p, log);
  rmSync(p.logDir, { recursive: true, force: true });
  for (const d of [
    p.runDir,
    p.logDir,
    p.certs,
    p.pids,
    p.kubeletRoot,
    p.containerd,
    path.join(p.runDir, 'cni/net.d'),
    path.join(p.runDir, 'device-plugins'),
  ]) {
    mkdirSync(d, { recursive: true });
  }
  writeFileSync(path.join(p.runDir, 'netns-before.json'), JSON.stringify(listNetns()));
  log(`run dir ${p.runDir}; component logs in ${p.logDir}`);

  makePki(p);
  setupNetwork();
  setupCgroupRoot();
  // The kubelet's device-plugin directory is fixed; give it a folder of ours so the run dir holds all state.
  mkdirSync(DEVICE_PLUGIN_DIR, { recursive: true });
  run('mount', ['--bind', path.join(p.runDir, 'device-plugins'), DEVICE_PLUGIN_DIR]);

  const k = (b: string) => path.join(bin.kubernetes, b);
  const c = p.certs;
  const daemons: Record<string, DaemonSpec> = {
    etcd: {
      name: 'etcd',
      netns: true,
      argv: [
        path.join(bin.etcd, 'etcd'),
        '--name=emuv',
        `--data-dir=${p.runDir}/etcd`,
        '--listen-client-urls=http://127.0.0.1:2379',
        '--advertise-client-urls=http://127.0.0.1:2379',
        '--listen-peer-urls=http://127.0.0.1:2380',
        '--initial-advertise-peer-urls=http://127.0.0.1:2380',
        '--initial-cluster=emuv=http://127.0.0.1:2380',
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ],
    },
    'kube-apiserver': {
      name: 'kube-apiserver',
      netns: true,
      argv: [
        k('kube-apiserver'),
        '--etcd-servers=http://127.0.0.1:2379',
        '--bind-address=0.0.0.0',
        `--secure-port=${APISERVER_PORT}`,
        `--advertise-address=${NODE_IP}`,
        `--cert-dir=${p.runDir}/apiserver`,
        `--tls-cert-file=${c}/apiserver.crt`,
        `--tls-private-key-file=${c}/apiserver.key`,
        `--client-ca-file=${c}/ca.crt`,
        `--kubelet-client-certificate=${c}/apiserver-kubelet-client.crt`,
        `--kubelet-client-key=${c}/apiserver-kubelet-client.key`,
        '--kubelet-preferred-address-types=InternalIP',
        '--service-account-issuer=https://kubernetes.default.svc',
        `--service-account-key-file=${c}/sa.pub`,
        `--service-account-signing-key-file=${c}/sa.key`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--authorization-mode=Node,RBAC',
        '--enable-admission-plugins=NodeRestriction',
        '--allow-privileged=true',
        '--enable-aggregator-routing=true',
        '--profiling=false',
        '--v=1',
        `--requestheader-client-ca-file=${c}/ca.crt`,
        '--requestheader-allowed-names=emuv-front-proxy',
        '--requestheader-username-headers=X-Remote-User',
        '--requestheader-group-headers=X-Remote-Group',
        '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      ],
    },
    'kube-scheduler': {
      name: 'kube-scheduler',
      netns: true,
      argv: [
        k('kube-scheduler'),
        `--kubeconfig=${c}/scheduler.kubeconfig`,
        `--authentication-kubeconfig=${c}/scheduler.kubeconfig`,
        `--authorization-kubeconfig=${c}/scheduler.kubeconfig`,
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        '--v=2',
      ],
    },
    'kube-controller-manager': {
      name: 'kube-controller-manager',
      netns: true,
      argv: [
        k('kube-controller-manager'),
        `--kubeconfig=${c}/controller-manager.kubeconfig`,
        `--authentication-kubeconfig=${c}/controller-manager.kubeconfig`,
        `--authorization-kubeconfig=${c}/controller-manager.kubeconfig`,
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--service-account-private-key-file=${c}/sa.key`,
        `--root-ca-file=${c}/ca.crt`,
        '--use-service-account-credentials=true',
        '--controllers=*,-nodeipam',
        `--cert-dir=${p.runDir}/controller-manager`,
        '--v=1',
      ],
    },
    containerd: {
      name: 'containerd',
      netns: true,
      argv: ['/usr/bin/containerd', `--config=${p.containerd}/config.toml`],
    },
    kubelet: {
      name: 'kubelet',
      netns: true,
      argv: [
        k('kubelet'),
        `--config=${p.kubeletRoot}/config.yaml`,
        `--kubeconfig=${c}/kubelet.kubeconfig`,
        `--root-dir=${p.kubeletRoot}`,
        `--cert-dir=${p.kubeletRoot}/pki`,
        `--hostname-override=${NODE_NAME}`,
        `--node-ip=${NODE_IP}`,
        '--v=2',
      ],
    },
  };
  const info: ClusterInfo = {
    paths: p,
    nodeName: NODE_NAME,
    nodeIP: NODE_IP,
    server: `https://${NODE_IP}:${APISERVER_PORT}`,
    kubeconfig: path.join(c, 'admin.kubeconfig'),
    caFile: path.join(c, 'ca.crt'),
    adminCert: path.join(c, 'admin.crt'),
    adminKey: path.join(c, 'admin.key'),
    devicePluginDir: DEVICE_PLUGIN_DIR,
    podResourcesSocket: path.join(p.kubeletRoot, 'pod-resources/kubelet.sock'),
    kubernetesVersion: readVersions().KUBERNETES_VERSION ?? 'unknown',
    bin,
    daemons,
  };
  writeFileSync(p.clusterFile, JSON.stringify(info, null, 2));

  try {
    // Control plane.
    startDaemon(info, 'etcd');
    await waitDaemon(
      info,
      'etcd',
      'etcd to listen',
      30_000,
      () => spawnSync('nsenter', [`--net=/run/netns/${NETNS}`, '--', 'bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/2379']).status === 0,
    );
    startDaemon(info, 'kube-apiserver');
    const kube = new Kube(info);
    try {
      await waitDaemon(
        info,
        'kube-apiserver',
        'kube-apiserver /readyz',
        120_000,
        async () => (await kube.raw('GET', '/readyz', undefined, undefined, 5_000)) === 'ok',
      );
      log(`kube-apiserver ready at ${info.server} (+${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      startDaemon(info, 'kube-scheduler');
      startDaemon(info, 'kube-controller-manager');

      // Node: containerd, images, CNI, kubelet.
      writeFileSync(path.join(p.containerd, 'config.toml'), containerdConfig(p));
      writeFileSync(path.join(p.runDir, 'cni/net.d/10-emuv-test.conflist'), cniConfig(p));
      writeFileSync(path.join(p.kubeletRoot, 'config.yaml'), kubeletConfig(p));
      const archives = buildImages(p);
      startDaemon(info, 'containerd');
      const ctr = ['--address', `${p.containerd}/containerd.sock`, '-n', 'k8s.io'];
      await waitDaemon(info, 'containerd', 'containerd to answer', 30_000, () => spawnSync('ctr', [...ctr, 'version']).status === 0);
      for (const a of archives) run('ctr', [...ctr, 'images', 'import', '--no-unpack=false', a]);
      const images = run('ctr', [...ctr, 'images', 'ls', '-q']);
      for (const img of [PAUSE_IMAGE, PROBE_IMAGE]) {
        if (!images.split('\n').includes(img)) throw new Error(`image ${img} missing after import; have: ${images}`);
      }
      startDaemon(info, 'kubelet');
      await waitNodeReady(info, kube, 180_000);
      log(`node ${NODE_NAME} Ready; cluster up in ${((Date.now() - t0) / 1000).toFixed(1)} s; admin kubeconfig: ${info.kubeconfig}`);
    } finally {
      kube.close();
    }
  } catch (e) {
    log(`cluster start failed; component logs are in ${p.logDir}`);
    await stopCluster(info, log).catch((err: unknown) => log(`teardown after failed start: ${(err as Error).message}`));
    throw e;
  }
  return info;
}

export async function waitNodeReady(info: ClusterInfo, kube: Kube, timeoutMs = 120_000): Promise<Json> {
  let last: Json;
  try {
    return await waitFor(
      `node ${info.nodeName} Ready`,
      timeoutMs,
      async () => {
        if (daemonPid(info, 'kubelet') === undefined) throw new Error('kubelet exited');
        try {
          last = await kube.node();
        } catch (e) {
          if (e instanceof KubeError && e.status === 404) return undefined;
          throw e;
        }
        const ready = (last?.status?.conditions ?? []).find((c: Json) => c.type === 'Ready');
        // Schedulable too: the node lifecycle controller removes the not-ready taint a moment after Ready.
        const notReadyTaint = (last?.spec?.taints ?? []).some((t: Json) => t.key === 'node.kubernetes.io/not-ready');
        return ready?.status === 'True' && !notReadyTaint ? last : undefined;
      },
      500,
    );
  } catch (e) {
    const conds = JSON.stringify(last?.status?.conditions ?? null);
    throw new Error(`${(e as Error).message}\nnode conditions: ${conds}\n--- kubelet log tail:\n${logTail(info, 'kubelet')}`, {
      cause: e,
    });
  }
}

/** Restarts the kubelet (stop, start, wait for Ready). Usable from any process that can read cluster.json. */
export async function restartKubelet(info: ClusterInfo, kube: Kube, timeoutMs = 120_000): Promise<void> {
  await stopDaemon(info, 'kubelet');
  startDaemon(info, 'kubelet');
  await waitNodeReady(info, kube, timeoutMs);
}

export async function stopCluster(info: ClusterInfo | undefined, log: (s: string) => void = () => {}): Promise<void> {
  const p = info?.paths ?? paths();
  if (info) {
    // Pods first, while the kubelet still runs, so it tears their sandboxes and networks down properly.
    const kube = new Kube(info);
    try {
      if (daemonPid(info, 'kubelet') && daemonPid(info, 'kube-apiserver')) {
        const pods = await kube.get('/api/v1/pods');
        for (const pod of pods.items ?? []) {
          await kube
            .json('DELETE', `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}?gracePeriodSeconds=0`)
            .catch(() => undefined);
        }
        await waitFor('pod sandboxes to stop', 30_000, () => cgroupPids().length === 0 || undefined).catch(() =>
          log('some pod processes were still running; killing them'),
        );
      }
    } catch (e) {
      log(`graceful pod deletion skipped: ${(e as Error).message}`);
    } finally {
      kube.close();
    }
    for (const name of ['kubelet', 'kube-controller-manager', 'kube-scheduler', 'containerd', 'kube-apiserver', 'etcd']) {
      await stopDaemon(info, name).catch((e: unknown) => log((e as Error).message));
    }
  }
  await cleanupStale(p, log);
  if (existsSync(OWNER_FILE) && readFileSync(OWNER_FILE, 'utf8').split('\n')[0] === p.runDir) rmSync(OWNER_FILE, { force: true });
  log(`cluster stopped; component logs kept in ${p.logDir}`);
}

// CLI: node_modules/.bin/node test/cluster/harness.ts up|down|cleanup  (for debugging and, later, `npm run demo`).
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const cmd = process.argv[2];
  const main = async () => {
    if (cmd === 'up') {
      const info = await startCluster();
      console.log(`export KUBECONFIG=${info.kubeconfig}`);
    } else if (cmd === 'down') {
      const p = paths();
      await stopCluster(existsSync(p.clusterFile) ? loadCluster(p) : undefined, console.log);
    } else if (cmd === 'cleanup') {
      await cleanupStale(paths(), console.log);
    } else {
      console.error('usage: node_modules/.bin/node test/cluster/harness.ts up|down|cleanup');
      process.exit(2);
    }
  };
  main().catch((e: unknown) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}

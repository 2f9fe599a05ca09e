/**
 * `emuv run`: one command through the interposer on a workstation, no Kubernetes. What the agent and the
 * device plugin do for a container, done for one process tree:
 *   1. find the NVIDIA driver (--driver-lib, else /proc/driver/nvidia and ldconfig: discovery/host-driver.ts);
 *   2. lay the interposer out in a private temporary directory (agent/interposer-install.ts, the agent's
 *      layout: the shims and the private links to the real libcuda.so.1 and libnvidia-ml.so.1);
 *   3. size the VRAM share (--vram-share, else the GPU's VRAM from NVML less --vram-reserve);
 *   4. make a stats directory <state-dir>/run-<pid>-<random>, which `emuv top|status --state-dir` read;
 *   5. run the command with the EMUV_* contract and LD_PRELOAD (no /etc/ld.so.preload without root),
 *      stdio inherited, SIGINT/SIGTERM/SIGHUP forwarded, and exit with its status;
 *   6. remove both directories (and those a killed earlier run left behind).
 * The pure parts (the environment, the GPU and its share, names, messages) are exported for the tests.
 */
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { CONTRACT_VERSION, ENV, LIBRARY_FILES } from '../../common/contracts/interposer.ts';
import { StartupError, describeSystemError } from '../../common/errors.ts';
import { hostDriver, type HostDriver } from '../discovery/host-driver.ts';
import { defaultInterposerSource } from '../agent/agent.ts';
import { installInterposer, installedPaths, REAL_LIBRARY_LINKS } from '../agent/interposer-install.ts';
import { defaultRunStateDir, type RunConfig } from '../config/run.ts';
import { normalizePciAddress, openNvml, type Nvml, type NvmlGpu } from '../discovery/nvml.ts';
import { usableVram } from '../inventory/capacity.ts';

const GiB = 1 << 30;
/** The driver's file names, as the private links of the agent's layout point at them. */
const LIBCUDA = REAL_LIBRARY_LINKS['libemuv-real-cuda.so'];
const LIBNVML = REAL_LIBRARY_LINKS['libemuv-real-nvml.so'];
/** Signals passed on to the command; emuv itself waits for the command to exit, then cleans up. */
export const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type ForwardedSignal = (typeof FORWARDED_SIGNALS)[number];

// ---- names ----

/** The stats directory of a run under the state directory: `run-<pid>-<random>` (mkdtemp adds the random part). */
export function runDirPrefix(pid: number): string {
  return `run-${pid}-`;
}
/** The private interposer directory of a run under the temporary directory. */
export function libDirPrefix(pid: number): string {
  return `emuv-run-${pid}-`;
}
const RUN_DIR = /^run-([1-9][0-9]*)-[A-Za-z0-9]{6}$/;
const LIB_DIR = /^emuv-run-([1-9][0-9]*)-[A-Za-z0-9]{6}$/;

/** The pid of the `emuv run` that made a directory of either kind, or null when the name is not one. */
export function runDirPid(name: string): number | null {
  const m = RUN_DIR.exec(name) ?? LIB_DIR.exec(name);
  return m ? Number(m[1]) : null;
}

// ---- the driver ----

export interface DriverLibs {
  /** The directory of libcuda.so.1: the private links point into it. */
  dir: string;
  /** Whether libnvidia-ml.so.1 is there too (else the NVML shim is not preloaded and NVML is not asked). */
  hasNvml: boolean;
}

export function driverNotFoundMessage(): string {
  return (
    `no NVIDIA driver found: looked for a GPU in /proc/driver/nvidia/gpus and for ${LIBCUDA} and ${LIBNVML} in \`ldconfig -p\`; ` +
    `give the driver's ${LIBCUDA} with --driver-lib <path>`
  );
}

/** --driver-lib (the file or its directory), else this machine's driver; throws StartupError naming what was searched. */
export function findDriver(driverLib: string | null, probe: () => HostDriver | null = hostDriver): DriverLibs {
  let dir: string;
  if (driverLib !== null) {
    // Absolute: the private links point at it from another directory.
    driverLib = resolve(driverLib);
    const st = statSync(driverLib, { throwIfNoEntry: false });
    if (!st) throw new StartupError('--driver-lib', `--driver-lib ${driverLib}: no such file or directory`);
    dir = st.isDirectory() ? driverLib : dirname(driverLib);
    if (!st.isDirectory() && basename(driverLib) !== LIBCUDA)
      throw new StartupError('--driver-lib', `--driver-lib ${driverLib}: expected the driver's ${LIBCUDA} or the directory holding it`);
    if (!existsSync(join(dir, LIBCUDA))) throw new StartupError('--driver-lib', `--driver-lib ${driverLib}: no ${LIBCUDA} in ${dir}`);
  } else {
    const found = probe();
    if (!found) throw new StartupError('--driver-lib', driverNotFoundMessage());
    dir = dirname(resolve(found.libcuda));
  }
  return { dir, hasNvml: existsSync(join(dir, LIBNVML)) };
}

// ---- the GPU and its share ----

function describeGpu(g: NvmlGpu, i: number): string {
  return `${i}: ${g.uuid ?? g.pciAddress}${g.name ? ` (${g.name})` : ''}`;
}

/** The GPU --gpu names (an NVML index, a UUID or a PCI address), or the first one NVML lists. */
export function chooseGpu(gpus: readonly NvmlGpu[], want: string | null): NvmlGpu {
  if (gpus.length === 0) throw new StartupError('--gpu', 'NVML lists no GPU');
  if (want === null) return gpus[0]!;
  const pci = normalizePciAddress(want);
  const i = /^(0|[1-9][0-9]*)$/.test(want)
    ? Number(want)
    : gpus.findIndex((g) => (g.uuid !== null && g.uuid.toLowerCase() === want.toLowerCase()) || (pci !== null && g.pciAddress === pci));
  const gpu = i >= 0 ? gpus[i] : undefined;
  if (!gpu) throw new StartupError('--gpu', `--gpu ${want}: no such GPU; NVML lists ${gpus.map(describeGpu).join(', ')}`);
  return gpu;
}

/** What NVML answered: its GPUs, or why it could not be asked. */
export type NvmlAnswer = { gpus: NvmlGpu[] } | { gpus: null; reason: string };

export interface Placement {
  shareBytes: number;
  /** EMUV_GPU: the GPU's UUID, else its PCI address; null when neither is known. */
  gpuId: string | null;
  /** CUDA_VISIBLE_DEVICES for the command when NVML lists several GPUs (the contract carries one); else null. */
  visibleDevices: string | null;
}

const GPU_ID = /^GPU-[0-9a-fA-F-]+$/;

/** The VRAM share and the GPU, from the flags and NVML's answer. Throws StartupError saying which flag to give. */
export function placement(cfg: Pick<RunConfig, 'vramShareBytes' | 'vramReserveBytes' | 'gpu'>, nvml: NvmlAnswer): Placement {
  if (nvml.gpus === null) {
    if (cfg.vramShareBytes === null)
      throw new StartupError(
        '--vram-share',
        `cannot tell the GPU's VRAM (${nvml.reason}): give --vram-share <size>, e.g. --vram-share 7Gi`,
      );
    const id = cfg.gpu !== null && (GPU_ID.test(cfg.gpu) || normalizePciAddress(cfg.gpu) !== null) ? cfg.gpu : null;
    return { shareBytes: cfg.vramShareBytes, gpuId: id, visibleDevices: null };
  }
  const gpu = chooseGpu(nvml.gpus, cfg.gpu);
  let shareBytes = cfg.vramShareBytes;
  if (shareBytes === null) {
    if (gpu.memoryBytes === null)
      throw new StartupError('--vram-share', `NVML does not report the VRAM of ${gpu.uuid ?? gpu.pciAddress}: give --vram-share <size>`);
    shareBytes = usableVram(gpu.memoryBytes, cfg.vramReserveBytes);
    if (shareBytes === 0)
      throw new StartupError(
        '--vram-reserve',
        `${gpu.uuid ?? gpu.pciAddress} has ${gib(gpu.memoryBytes)} of VRAM, not more than --vram-reserve (${gib(cfg.vramReserveBytes)}): give a smaller --vram-reserve or --vram-share`,
      );
  }
  const gpuId = gpu.uuid !== null && GPU_ID.test(gpu.uuid) ? gpu.uuid : gpu.pciAddress;
  return { shareBytes, gpuId, visibleDevices: nvml.gpus.length > 1 ? gpuId : null };
}

export function gib(bytes: number): string {
  return `${(bytes / GiB).toFixed(1)} GiB`;
}

// ---- the command's environment ----

export interface ChildSetup {
  /** The private interposer's library directory (host path). */
  libDir: string;
  /** Preload the NVML shim too (the driver has libnvidia-ml.so.1). */
  nvmlShim: boolean;
  limitBytes: number;
  placement: Placement;
  statsFile: string;
  spillBackend: RunConfig['spillBackend'];
}

function prependPath(entry: string, existing: string | undefined): string {
  return existing ? `${entry}:${existing}` : entry;
}

/**
 * The command's environment: the caller's, with the interposer contract (sizes in bytes, as Allocate
 * writes them) and the preload. The shims go first in LD_PRELOAD, before anything the caller preloads;
 * LD_LIBRARY_PATH gets the private directory, whose libcuda.so.1 and libnvidia-ml.so.1 are the shims, so
 * a process that drops LD_PRELOAD but keeps the library path still reaches them.
 */
export function childEnvironment(base: Readonly<Record<string, string | undefined>>, s: ChildSetup): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  const shims = [LIBRARY_FILES.cuda, ...(s.nvmlShim ? [LIBRARY_FILES.nvml] : [])].map((f) => join(s.libDir, f));
  env.LD_PRELOAD = [...shims, ...(base.LD_PRELOAD ? [base.LD_PRELOAD] : [])].join(':');
  env.LD_LIBRARY_PATH = prependPath(s.libDir, base.LD_LIBRARY_PATH);
  env[ENV.contractVersion] = String(CONTRACT_VERSION);
  env[ENV.limitBytes] = String(s.limitBytes);
  env[ENV.vramShare] = String(s.placement.shareBytes);
  env[ENV.vramMode] = 'fill';
  env[ENV.spillBackend] = s.spillBackend;
  env[ENV.statsFile] = s.statsFile;
  if (s.placement.gpuId !== null) env[ENV.gpu] = s.placement.gpuId;
  else delete env[ENV.gpu];
  if (s.placement.visibleDevices !== null) env.CUDA_VISIBLE_DEVICES = s.placement.visibleDevices;
  return env;
}

// ---- directories ----

/** `emuv run`'s own directories left by runs whose process is gone (killed before it could clean up). */
export function staleRunDirs(names: readonly string[], isAlive: (pid: number) => boolean, ownPid: number): string[] {
  return names.filter((n) => {
    const pid = runDirPid(n);
    return pid !== null && pid !== ownPid && !isAlive(pid);
  });
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function removeStale(dir: string, uid: number, pid: number, isAlive: (pid: number) => boolean): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of staleRunDirs(names, isAlive, pid)) {
    const path = join(dir, n);
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st?.isDirectory() && st.uid === uid) rmSync(path, { recursive: true, force: true });
  }
}

/**
 * The state directory, made if missing (0700). The default one, under /tmp when there is no
 * XDG_RUNTIME_DIR, must be this user's own and writable by no one else: the run's stats go there.
 */
export function prepareStateDir(dir: string, isDefault: boolean, uid: number): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new StartupError('--state-dir', `--state-dir ${dir}: cannot create it: ${describeSystemError(err)}`, { cause: err });
  }
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new StartupError('--state-dir', `--state-dir ${dir}: not a directory`);
  if (isDefault && (st.uid !== uid || (st.mode & 0o022) !== 0))
    throw new StartupError(
      '--state-dir',
      `--state-dir ${dir}: belongs to uid ${st.uid} or is writable by others; remove it or give another --state-dir`,
    );
}

// ---- the run ----

export interface RunDeps {
  env: Readonly<Record<string, string | undefined>>;
  /** Subscribes to the signals emuv forwards; returns the unsubscribe. */
  onSignals: (forward: (signal: ForwardedSignal) => void) => () => void;
  stderr: (line: string) => void;
  uid?: number;
  pid?: number;
  tmpDir?: string;
  probeDriver?: () => HostDriver | null;
  openNvml?: (library: string) => { nvml: Nvml } | { nvml: null; reason: string };
  isAlive?: (pid: number) => boolean;
}

function askNvml(driver: DriverLibs, open: NonNullable<RunDeps['openNvml']>): NvmlAnswer {
  if (!driver.hasNvml) return { gpus: null, reason: `no ${LIBNVML} in ${driver.dir}` };
  const r = open(join(driver.dir, LIBNVML));
  if (!r.nvml) return { gpus: null, reason: r.reason };
  try {
    return { gpus: r.nvml.gpus() };
  } finally {
    r.nvml.close();
  }
}

/** Exit status of a command killed by a signal, as a shell reports it. */
export function signalStatus(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

export async function emuvRun(cfg: RunConfig, deps: RunDeps): Promise<number> {
  const uid = deps.uid ?? process.getuid?.() ?? 0;
  const pid = deps.pid ?? process.pid;
  const isAlive = deps.isAlive ?? processAlive;
  const say = (msg: string) => deps.stderr(`emuv run: ${msg}\n`);

  const driver = findDriver(cfg.driverLib, deps.probeDriver);
  if (!driver.hasNvml) say(`no ${LIBNVML} beside ${join(driver.dir, LIBCUDA)}: NVML in the command reports the physical card`);
  const source = resolve(cfg.interposerSource ?? defaultInterposerSource());
  const missing = Object.values(LIBRARY_FILES).filter((f) => !existsSync(join(source, f)));
  if (missing.length > 0)
    throw new StartupError(
      '--interposer-source',
      `the interposer is not built: no ${missing.join(', ')} in ${source}; build it with \`make -C native\` or give --interposer-source <dir>`,
    );
  // NVML sizes the share and names the GPU; with --vram-share given it only names the GPU.
  const where = placement(cfg, askNvml(driver, deps.openNvml ?? openNvml));

  // Absolute: EMUV_STATS_FILE must be (the interposer ignores a relative path), and the command may chdir.
  const stateDir = resolve(cfg.stateDir ?? defaultRunStateDir(deps.env, uid));
  prepareStateDir(stateDir, cfg.stateDir === null, uid);
  const tmp = resolve(deps.tmpDir ?? tmpdir());
  removeStale(stateDir, uid, pid, isAlive);
  removeStale(tmp, uid, pid, isAlive);

  const made: string[] = [];
  try {
    const privateDir = mkdtempSync(join(tmp, libDirPrefix(pid)));
    made.push(privateDir);
    const statsDir = mkdtempSync(join(stateDir, runDirPrefix(pid)));
    made.push(statsDir);
    const installed = installInterposer({ sourceDir: source, targetDir: privateDir, driverLibDir: driver.dir });
    if (!installed.install) throw new StartupError('--interposer-source', installed.reason);
    const { libDir } = installedPaths(privateDir);
    // The shims under the driver's names, for LD_LIBRARY_PATH (the preload file is the container's; unused here).
    symlinkSync(LIBRARY_FILES.cuda, join(libDir, LIBCUDA));
    if (driver.hasNvml) symlinkSync(LIBRARY_FILES.nvml, join(libDir, LIBNVML));
    const env = childEnvironment(deps.env, {
      libDir,
      nvmlShim: driver.hasNvml,
      limitBytes: cfg.limitBytes,
      placement: where,
      statsFile: join(statsDir, 'stats.bin'),
      spillBackend: cfg.spillBackend,
    });
    say(
      `${cfg.command[0]} sees ${gib(cfg.limitBytes)} on ${where.gpuId ?? 'the GPU'} ` +
        `(${gib(Math.min(where.shareBytes, cfg.limitBytes))} of VRAM, then host RAM); ` +
        `emuv top --state-dir ${stateDir}`,
    );
    return await runChild(cfg.command, env, deps, say);
  } finally {
    for (const d of made.reverse()) rmSync(d, { recursive: true, force: true });
  }
}

function runChild(command: string[], env: Record<string, string>, deps: RunDeps, say: (msg: string) => void): Promise<number> {
  return new Promise((resolve) => {
    // Listening before the spawn: once the command runs it may print, and be signalled, before this process
    // gets the CPU back; a signal arriving with no listener would kill emuv and orphan the command. A signal
    // that comes before the command exists is delivered to it as soon as it does.
    let child: ReturnType<typeof spawn> | null = null;
    let pending: NodeJS.Signals | null = null;
    const unsubscribe = deps.onSignals((signal) => {
      if (!child) pending = signal;
      else if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    });
    child = spawn(command[0]!, command.slice(1), { stdio: 'inherit', env });
    if (pending) child.kill(pending);
    child.once('error', (err: NodeJS.ErrnoException) => {
      unsubscribe();
      say(`cannot run ${command[0]}: ${describeSystemError(err)}`);
      resolve(err.code === 'ENOENT' ? 127 : 126);
    });
    child.once('exit', (code, signal) => {
      unsubscribe();
      resolve(code ?? (signal ? signalStatus(signal) : 1));
    });
  });
}

/**
 * `emuv run`: the pure parts (the GPU and its share from NVML's answer, the command's environment, names,
 * messages), then the command itself from the sources against the simulated driver (native/build/sim):
 * the child sees the virtual total, `emuv status --state-dir` sees the run, signals reach the child, and
 * nothing is left behind.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../common/contracts/interposer.ts';
import { StartupError } from '../../common/errors.ts';
import { NODE_BIN, REPO_ROOT, tempDir } from '../../localcluster/repo.ts';
import { parseRunConfig } from '../config/run.ts';
import type { NvmlGpu } from '../discovery/nvml.ts';
import {
  childEnvironment,
  chooseGpu,
  driverNotFoundMessage,
  emuvRun,
  findDriver,
  libDirPrefix,
  placement,
  prepareStateDir,
  runDirPid,
  runDirPrefix,
  signalStatus,
  staleRunDirs,
} from './run.ts';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const SIM = join(REPO_ROOT, 'native', 'build', 'sim');
const DEMO = join(REPO_ROOT, 'native', 'build', 'examples', 'vram-demo');

function gpu(over: Partial<NvmlGpu> = {}): NvmlGpu {
  return {
    pciAddress: '0000:01:00.0',
    uuid: 'GPU-8f0c2a11-0000-4000-8000-00000000abcd',
    name: 'NVIDIA GeForce RTX 4060',
    minor: 0,
    memoryBytes: 8 * GiB,
    ...over,
  };
}
const defaults = { vramShareBytes: null, vramReserveBytes: 512 * MiB, gpu: null };

describe('the GPU and its VRAM share', () => {
  it('takes the GPU’s VRAM less the reserve, and names the GPU by UUID', () => {
    expect(placement(defaults, { gpus: [gpu()] })).toEqual({
      shareBytes: 7.5 * GiB,
      gpuId: 'GPU-8f0c2a11-0000-4000-8000-00000000abcd',
      visibleDevices: null,
    });
    expect(placement({ ...defaults, vramReserveBytes: 2 * GiB }, { gpus: [gpu()] }).shareBytes).toBe(6 * GiB);
  });

  it('a given --vram-share wins over NVML; without NVML it is needed', () => {
    expect(placement({ ...defaults, vramShareBytes: 3 * GiB }, { gpus: [gpu()] }).shareBytes).toBe(3 * GiB);
    expect(placement({ ...defaults, vramShareBytes: 3 * GiB, gpu: '0000:02:00.0' }, { gpus: null, reason: 'cannot load x' })).toEqual({
      shareBytes: 3 * GiB,
      gpuId: '0000:02:00.0',
      visibleDevices: null,
    });
    expect(placement({ ...defaults, vramShareBytes: 3 * GiB, gpu: '1' }, { gpus: null, reason: 'r' }).gpuId).toBeNull();
    expect(() => placement(defaults, { gpus: null, reason: 'cannot load libnvidia-ml.so.1: nope' })).toThrow(
      "cannot tell the GPU's VRAM (cannot load libnvidia-ml.so.1: nope): give --vram-share <size>, e.g. --vram-share 7Gi",
    );
    expect(() => placement(defaults, { gpus: [gpu({ memoryBytes: null })] })).toThrow(
      /NVML does not report the VRAM of GPU-8f0c.*: give --vram-share <size>/,
    );
  });

  it('refuses a reserve that leaves nothing', () => {
    expect(() => placement({ ...defaults, vramReserveBytes: 8 * GiB }, { gpus: [gpu()] })).toThrow(
      /has 8\.0 GiB of VRAM, not more than --vram-reserve \(8\.0 GiB\): give a smaller --vram-reserve or --vram-share/,
    );
  });

  it('--gpu picks by index, UUID or PCI address; with several GPUs the command sees only that one', () => {
    const two = [gpu(), gpu({ pciAddress: '0000:41:00.0', uuid: 'GPU-ffff0000-0000-4000-8000-000000000002', memoryBytes: 24 * GiB })];
    for (const want of ['1', 'GPU-FFFF0000-0000-4000-8000-000000000002', '41:00.0'.padStart(12, '0000:'), '00000000:41:00.0'])
      expect(chooseGpu(two, want)).toBe(two[1]);
    expect(chooseGpu(two, null)).toBe(two[0]);
    expect(placement({ ...defaults, gpu: '1' }, { gpus: two })).toEqual({
      shareBytes: 23.5 * GiB,
      gpuId: 'GPU-ffff0000-0000-4000-8000-000000000002',
      visibleDevices: 'GPU-ffff0000-0000-4000-8000-000000000002',
    });
    expect(() => chooseGpu(two, '2')).toThrow(StartupError);
    expect(() => chooseGpu(two, 'GPU-nope')).toThrow(
      '--gpu GPU-nope: no such GPU; NVML lists 0: GPU-8f0c2a11-0000-4000-8000-00000000abcd (NVIDIA GeForce RTX 4060), 1: GPU-ffff0000-0000-4000-8000-000000000002 (NVIDIA GeForce RTX 4060)',
    );
    expect(() => chooseGpu([], null)).toThrow('NVML lists no GPU');
  });

  it('names a GPU without a usable UUID by its PCI address', () => {
    expect(placement(defaults, { gpus: [gpu({ uuid: null })] }).gpuId).toBe('0000:01:00.0');
  });
});

describe('the command’s environment', () => {
  const setup = {
    libDir: '/tmp/emuv-run-42-abcdef/lib',
    nvmlShim: true,
    limitBytes: 28 * GiB,
    placement: { shareBytes: 7.5 * GiB, gpuId: 'GPU-1234', visibleDevices: null },
    statsFile: '/run/user/1000/emuv/run-42-abcdef/stats.bin',
    spillBackend: 'pinned' as const,
  };

  it('is the caller’s with the contract in bytes and the shims preloaded first', () => {
    const env = childEnvironment({ HOME: '/home/a', LD_PRELOAD: '/opt/libx.so', LD_LIBRARY_PATH: '/opt/lib', UNSET: undefined }, setup);
    expect(env).toEqual({
      HOME: '/home/a',
      LD_PRELOAD: '/tmp/emuv-run-42-abcdef/lib/libemuv-cuda.so:/tmp/emuv-run-42-abcdef/lib/libemuv-nvml.so:/opt/libx.so',
      LD_LIBRARY_PATH: '/tmp/emuv-run-42-abcdef/lib:/opt/lib',
      [ENV.contractVersion]: '1',
      [ENV.limitBytes]: String(28 * GiB),
      [ENV.vramShare]: String(7.5 * GiB),
      [ENV.vramMode]: 'fill',
      [ENV.spillBackend]: 'pinned',
      [ENV.statsFile]: '/run/user/1000/emuv/run-42-abcdef/stats.bin',
      [ENV.gpu]: 'GPU-1234',
    });
  });

  it('drops a stale EMUV_GPU, leaves NVML alone without its shim, and narrows CUDA_VISIBLE_DEVICES to the GPU', () => {
    const env = childEnvironment(
      { [ENV.gpu]: 'GPU-old' },
      { ...setup, nvmlShim: false, placement: { shareBytes: GiB, gpuId: null, visibleDevices: 'GPU-2' } },
    );
    expect(env.LD_PRELOAD).toBe('/tmp/emuv-run-42-abcdef/lib/libemuv-cuda.so');
    expect(env.LD_LIBRARY_PATH).toBe('/tmp/emuv-run-42-abcdef/lib');
    expect(env[ENV.gpu]).toBeUndefined();
    expect(env.CUDA_VISIBLE_DEVICES).toBe('GPU-2');
  });
});

describe('names and leftovers', () => {
  it('names a run’s directories by its pid, and finds those of runs that are gone', () => {
    expect(runDirPrefix(42)).toBe('run-42-');
    expect(libDirPrefix(42)).toBe('emuv-run-42-');
    expect(runDirPid('run-42-aB3xYz')).toBe(42);
    expect(runDirPid('emuv-run-42-aB3xYz')).toBe(42);
    for (const other of ['run-42', 'run-042-aB3xYz', 'gpu-0000-01-00-0-s03', 'run-42-aB3xYz/x', 'emuv-realsw-abc'])
      expect(runDirPid(other)).toBeNull();
    const names = ['run-1-aaaaaa', 'run-2-bbbbbb', 'emuv-run-3-cccccc', 'run-7-dddddd', 'gpu-0000-01-00-0-s03', 'notes'];
    expect(staleRunDirs(names, (pid) => pid === 2, 7)).toEqual(['run-1-aaaaaa', 'emuv-run-3-cccccc']);
  });

  it('the exit status of a command killed by a signal is 128 + its number, as a shell says', () => {
    expect(signalStatus('SIGTERM')).toBe(143);
    expect(signalStatus('SIGINT')).toBe(130);
  });
});

describe('what it refuses', () => {
  const tmp = tempDir('emuv-run-unit-');
  afterAll(() => tmp.cleanup());

  it('no driver: says what was searched and --driver-lib', () => {
    expect(() => findDriver(null, () => null)).toThrow(driverNotFoundMessage());
    expect(driverNotFoundMessage()).toMatch(/\/proc\/driver\/nvidia\/gpus.*libcuda\.so\.1.*ldconfig -p.*--driver-lib/);
    expect(() => findDriver(join(tmp.path, 'none'))).toThrow(/^--driver-lib .*none: no such file or directory$/);
    const dir = join(tmp.path, 'driver');
    mkdirSync(dir);
    expect(() => findDriver(dir)).toThrow(`--driver-lib ${dir}: no libcuda.so.1 in ${dir}`);
    writeFileSync(join(dir, 'libcuda.so.550.54'), '');
    expect(() => findDriver(join(dir, 'libcuda.so.550.54'))).toThrow(/expected the driver's libcuda\.so\.1 or the directory holding it/);
    writeFileSync(join(dir, 'libcuda.so.1'), '');
    expect(findDriver(join(dir, 'libcuda.so.1'))).toEqual({ dir, hasNvml: false });
    expect(findDriver(null, () => ({ libcuda: join(dir, 'libcuda.so.1'), libnvml: '/x/libnvidia-ml.so.1' }))).toEqual({
      dir,
      hasNvml: false,
    });
  });

  it('no interposer: says make -C native, before making anything', async () => {
    const driver = join(tmp.path, 'drv2');
    mkdirSync(driver);
    writeFileSync(join(driver, 'libcuda.so.1'), '');
    const state = join(tmp.path, 'state-unbuilt');
    const cfg = { ...parseRunConfig(['--limit', '28Gi', '--vram-share', '7Gi', '--', 'true'], {}), driverLib: driver, stateDir: state };
    await expect(
      emuvRun({ ...cfg, interposerSource: join(tmp.path, 'nolib') }, { env: {}, onSignals: () => () => {}, stderr: () => {} }),
    ).rejects.toThrow(
      /the interposer is not built: no libemuv-cuda\.so, libemuv-nvml\.so in .*nolib; build it with `make -C native` or give --interposer-source <dir>/,
    );
    expect(existsSync(state)).toBe(false);
  });

  it('a default state directory that others can write to', () => {
    const dir = join(tmp.path, 'shared-state');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const uid = process.getuid!();
    expect(() => prepareStateDir(dir, true, uid)).toThrow(/writable by others; remove it or give another --state-dir/);
    expect(() => prepareStateDir(dir, true, uid + 1)).toThrow(/belongs to uid/);
    expect(() => prepareStateDir(dir, false, uid)).not.toThrow(); // given explicitly: the person's choice
    writeFileSync(join(tmp.path, 'file'), '');
    expect(() => prepareStateDir(join(tmp.path, 'file'), false, uid)).toThrow(/not a directory|cannot create it/);
  });
});

// ---- the command itself, on the simulated driver ----

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

describe('emuv run on the simulated 8 GiB GeForce', () => {
  const tmp = tempDir('emuv-run-it-');
  const state = join(tmp.path, 'state');
  const tmpDirOfRuns = join(tmp.path, 'tmp');
  const env: Record<string, string | undefined> = {
    ...process.env,
    EMUV_SIM_VRAM: '8Gi',
    EMUV_SIM_STATE: join(tmp.path, 'sim-state'),
    TMPDIR: tmpDirOfRuns,
  };
  for (const k of Object.keys(env)) if (k.startsWith('EMUV_AGENT_') || k === 'LD_PRELOAD') delete env[k];

  beforeAll(() => {
    execFileSync('make', ['-C', join(REPO_ROOT, 'native'), '-s', 'all'], { stdio: 'pipe' });
    mkdirSync(tmpDirOfRuns, { recursive: true });
  }, 120_000);
  afterAll(() => tmp.cleanup());

  function emuv(args: string[], opts: { onStdout?: (text: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Ran> {
    return new Promise((resolve) => {
      // A process group of its own: if emuv hangs, the timer kills the command too, whose inherited stdout would
      // otherwise keep the pipe (and this promise) open past the test's timeout.
      const child = spawn(NODE_BIN, [join(REPO_ROOT, 'plugin', 'main.ts'), ...args], {
        env,
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: true,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        opts.onStdout?.(stdout, child);
      });
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      if (!opts.onStdout) child.stdin.end();
      const timer = setTimeout(() => {
        stderr += '\n[test] emuv still running after 30 s: killed its process group';
        process.kill(-child.pid!, 'SIGKILL');
      }, 30_000);
      child.on('close', (status) => {
        clearTimeout(timer);
        resolve({ status, stdout, stderr });
      });
    });
  }
  const run = ['run', '--limit', '28Gi', '--driver-lib', join(SIM, 'libcuda.so.1'), '--state-dir', state];
  const leftovers = () => [...readdirSync(state), ...readdirSync(tmpDirOfRuns)];

  it('a CUDA program sees 28 GiB through CUDA and NVML, and places 20 GiB VRAM first; nothing is left behind', async () => {
    const r = await emuv([...run, '--', DEMO]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('card: cuMemGetInfo total 28.0 GiB free 28.0 GiB; cuDeviceTotalMem 28.0 GiB; NVML total 28.0 GiB');
    expect(r.stdout).toContain('allocated 20 x 1 GiB through cuMemAlloc');
    expect(r.stdout).toContain('data check on the last tensor: ok');
    expect(r.stderr).toMatch(
      /^emuv run: .*vram-demo sees 28\.0 GiB on GPU-[0-9a-f-]+ \(7\.5 GiB of VRAM, then host RAM\); emuv top --state-dir /m,
    );
    expect(leftovers()).toEqual([]);
  }, 60_000);

  it('hands the contract to the command and exits with its status', async () => {
    const r = await emuv([...run, '--spill-backend', 'managed', '--', 'sh', '-c', 'env; exit 3']);
    expect(r.status, r.stderr).toBe(3);
    const seen = Object.fromEntries(r.stdout.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    expect(seen).toMatchObject({
      [ENV.contractVersion]: '1',
      [ENV.limitBytes]: String(28 * GiB),
      [ENV.vramShare]: String(7.5 * GiB), // the simulated card's 8 GiB less the 512 MiB reserve, from NVML
      [ENV.spillBackend]: 'managed',
      [ENV.vramMode]: 'fill',
    });
    expect(seen[ENV.gpu]).toMatch(/^GPU-[0-9a-f-]+$/);
    expect(seen[ENV.statsFile]).toMatch(new RegExp(`^${state}/run-[0-9]+-[A-Za-z0-9]{6}/stats\\.bin$`));
    expect(seen.LD_PRELOAD).toMatch(
      new RegExp(`^${tmpDirOfRuns}/emuv-run-[0-9]+-[A-Za-z0-9]{6}/lib/libemuv-cuda\\.so:.*/libemuv-nvml\\.so$`),
    );
    expect(leftovers()).toEqual([]);
  }, 60_000);

  it('emuv status --state-dir shows the run while it holds memory', async () => {
    let status: Ran | undefined;
    const r = await emuv([...run, '--', DEMO], {
      onStdout: (out, child) => {
        if (!out.includes('ready\n') || status) return;
        status = { status: null, stdout: '', stderr: '' };
        void emuv(['status', '--state-dir', state]).then((s) => {
          status = s;
          child.stdin!.end(); // the demo frees and exits when its stdin closes
        });
      },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(status!.status, status!.stderr).toBe(0);
    const doc = JSON.parse(status!.stdout) as {
      containers: { allocId: string; limitBytes: number; vramUsedBytes: number; hostUsedBytes: number; processes: number }[];
    };
    expect(doc.containers).toHaveLength(1);
    const c = doc.containers[0]!;
    expect(c.allocId).toMatch(/^run-[0-9]+-[A-Za-z0-9]{6}$/);
    expect(c.limitBytes).toBe(28 * GiB);
    expect(c.vramUsedBytes + c.hostUsedBytes).toBe(20 * GiB);
    expect(c.vramUsedBytes).toBeGreaterThanOrEqual(6 * GiB);
    expect(c.processes).toBe(1);
    expect(leftovers()).toEqual([]);
  }, 60_000);

  it('forwards SIGTERM to the command, exits with its status, and cleans up', async () => {
    const script = 'trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.05; done';
    let sent = false;
    const r = await emuv([...run, '--', 'sh', '-c', script], {
      onStdout: (out, child) => {
        if (out.includes('ready') && !sent) {
          sent = true;
          child.kill('SIGTERM');
        }
      },
    });
    expect(r.stdout).toContain('got-term');
    expect(r.status, r.stderr).toBe(7);
    expect(leftovers()).toEqual([]);
  }, 60_000);

  it('removes what a killed earlier run left; keeps what is not a run’s', async () => {
    mkdirSync(join(state, 'run-4194303-aaaaaa'), { recursive: true }); // above any pid this machine has given
    mkdirSync(join(tmpDirOfRuns, 'emuv-run-4194303-bbbbbb'), { recursive: true });
    mkdirSync(join(state, 'notes'));
    const r = await emuv([...run, '--', 'true']);
    expect(r.status, r.stderr).toBe(0);
    expect(leftovers()).toEqual(['notes']);
  }, 60_000);

  it('a command that cannot be found exits 127 and says so', async () => {
    const r = await emuv([...run, '--', join(tmp.path, 'no-such-program')]);
    expect(r.status).toBe(127);
    expect(r.stderr).toMatch(/emuv run: cannot run .*no-such-program: no such file or directory \(ENOENT\)/);
  }, 60_000);

  it('--help before -- is emuv’s; after -- it is the command’s', async () => {
    const help = await emuv(['run', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: emuv run \[flags\]\n/);
    expect(help.stdout).toContain('The command goes after --: emuv run --limit 28Gi -- python infer.py');
    const r = await emuv([...run, '--', 'sh', '-c', 'printf "%s\\n" "$@"', 'sh', '--help', '-h']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('--help\n-h\n');
  }, 60_000);
});

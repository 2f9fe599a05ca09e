/**
 * The `emuv` command as a user runs it: a separate Node 24 process, flags, exit codes, output.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { StandInKubelet } from '../../localcluster/stand-in-kubelet.ts';
import { NODE_BIN, NODE_FIXTURES, REPO_ROOT, copyNodeFixture, runEmuv, tempDir } from '../../localcluster/repo.ts';
import { agentFlags, waitUntil } from '../helpers.ts';

const MAIN = join(REPO_ROOT, 'plugin', 'main.ts');
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(NODE_BIN, [MAIN, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 });
const fixtureArgs = (name: string) => [
  `--sys-root=${join(NODE_FIXTURES, name, 'sys')}`,
  `--proc-root=${join(NODE_FIXTURES, name, 'proc')}`,
  '--nvml-library=off',
];

const EXPECTED: Record<string, { gpus: [string, boolean][]; vramVirtual: number; vgpu: number; memory: string[] }> = {
  'one-gpu': { gpus: [['0000:01:00.0', true]], vramVirtual: 7.5 * 2 ** 30 + 16 * 2 ** 30, vgpu: 16, memory: ['0000:01:00.0=8Gi'] },
  'two-gpus-numa': {
    gpus: [
      ['0000:17:00.0', true],
      ['0000:65:00.0', true],
    ],
    vramVirtual: 2 * 79.5 * 2 ** 30 + 256 * 2 ** 30,
    vgpu: 32,
    memory: ['0000:17:00.0=80Gi', '0000:65:00.0=80Gi'],
  },
  'igpu-and-nvidia': {
    gpus: [['0000:01:00.0', true]],
    vramVirtual: 15.5 * 2 ** 30 + 32 * 2 ** 30,
    vgpu: 16,
    memory: ['0000:01:00.0=16Gi'],
  },
  vfio: {
    gpus: [
      ['0000:01:00.0', false],
      ['0000:02:00.0', true],
      ['0000:03:00.0', false],
    ],
    vramVirtual: 23.5 * 2 ** 30 + 64 * 2 ** 30,
    vgpu: 16,
    memory: ['0000:01:00.0=24Gi', '0000:02:00.0=24Gi', '0000:03:00.0=24Gi'],
  },
  garbage: {
    gpus: [
      ['0000:01:00.0', true],
      ['0000:04:00.0', false],
    ],
    vramVirtual: 7.5 * 2 ** 30,
    vgpu: 16,
    memory: ['0000:01:00.0=8Gi'],
  },
  'missing-numa': { gpus: [['0000:01:00.0', true]], vramVirtual: 7.5 * 2 ** 30 + 8 * 2 ** 30, vgpu: 16, memory: ['0000:01:00.0=8Gi'] },
};

describe('emuv discover', () => {
  it.each(Object.entries(EXPECTED))('%s: prints the right GPUs and capacity as versioned JSON', (name, want) => {
    const r = run(['discover', ...fixtureArgs(name), ...want.memory.map((m) => `--gpu-memory=${m}`), '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.apiVersion).toBe('emuv.io/discover/v1');
    expect(doc.gpus.map((g: { pciAddress: string; offered: boolean }) => [g.pciAddress, g.offered])).toEqual(want.gpus);
    expect(doc.capacity['emuv.io/vram-virtual']).toBe(want.vramVirtual);
    expect(doc.capacity['emuv.io/vgpu']).toBe(want.vgpu);
  });

  it('prints text like nvidia-smi -L plus the capacity', () => {
    const r = run(['discover', ...fixtureArgs('one-gpu'), '--gpu-memory=0000:01:00.0=8Gi']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('GPU 0: NVIDIA GeForce RTX 4060 (UUID: GPU-4f1e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b)');
    expect(r.stdout).toContain('PCIe 16 GT/s x8 = 15.8 GB/s spill');
    // 8 GiB less the 512 MiB reserve, plus the auto spill budget min(50 % of 32 GiB, 32 GiB - 8 GiB) = 16 GiB.
    const vramVirtual = 8 * 2 ** 30 - 512 * 2 ** 20 + 16 * 2 ** 30;
    expect(r.stdout).toContain(`Capacity: emuv.io/vram-virtual ${vramVirtual} (23.5 GiB), emuv.io/vgpu 16`);
  });

  it('takes EMUV_AGENT_* environment equivalents, and not the interposer contract’s EMUV_* ones', () => {
    const env = {
      EMUV_AGENT_SYS_ROOT: join(NODE_FIXTURES, 'one-gpu', 'sys'),
      EMUV_AGENT_PROC_ROOT: join(NODE_FIXTURES, 'one-gpu', 'proc'),
      EMUV_AGENT_NVML_LIBRARY: 'off',
      EMUV_AGENT_GPU_MEMORY: '0000:01:00.0=8Gi',
      EMUV_AGENT_SLOTS_PER_GPU: '4',
      EMUV_AGENT_HOST_SPILL: '40%',
      EMUV_VRAM_MODE: 'fixed',
    };
    const r = run(['discover', '--json'], env);
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.capacity['emuv.io/vgpu']).toBe(4);
    // 40 % of the fixture's 32 GiB of RAM, and fill: EMUV_VRAM_MODE is a container's variable, not the agent's.
    expect(doc.capacity['emuv.io/vram-virtual']).toBe(7.5 * 2 ** 30 + Math.floor(0.4 * 32 * 2 ** 30));
    expect(run(['discover', '--json', '--slots-per-gpu=2'], env).stdout).toContain('"emuv.io/vgpu": 2');
  });

  it('exits 2 with one clear line on a bad flag or variable', () => {
    const r = run(['discover', '--slots-per-gpu=lots']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('emuv: --slots-per-gpu lots: expected an integer from 1 to 128\n');
    const spill = run(['discover', '--host-spill=95%']);
    expect(spill.status).toBe(2);
    expect(spill.stderr).toBe('emuv: --host-spill 95%: a percent may be at most 90% of node memory: the node needs RAM for its own pods\n');
    const v = run(['discover'], { EMUV_AGENT_JSON: 'yes' });
    expect(v.status).toBe(2);
    expect(v.stderr).toBe('emuv: EMUV_AGENT_JSON=yes: expected on or off (or true, false)\n');
    expect(run(['frobnicate']).status).toBe(2);
  });

  it('--help prints the flags generated from the table, each with its variable', () => {
    const r = run(['plugin', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: emuv plugin \[flags\]/);
    expect(r.stdout).toContain('[EMUV_AGENT_HOST_SPILL]');
    expect(r.stdout).toContain('[EMUV_AGENT_KUBECONFIG, then KUBECONFIG]');
    expect(r.stdout).toContain('--spill-backend auto|pinned|managed');
  });
});

describe('emuv plugin as a process', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('registers with the flags documented, then on SIGTERM stops, removes its socket and exits 0', async () => {
    const roots = copyNodeFixture('one-gpu', join(tmp.path, 'node'));
    const dpDir = join(tmp.path, 'dp');
    mkdirSync(dpDir);
    const kubelet = new StandInKubelet(dpDir);
    await kubelet.start();
    // --spill-backend as its variable: what the chart sets, and what every allocated container is told.
    const child = spawn(NODE_BIN, [MAIN, 'plugin', ...agentFlags(roots, tmp.path, dpDir, '--gpu-memory=0000:01:00.0=8Gi')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '', EMUV_AGENT_SPILL_BACKEND: 'pinned' },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await kubelet.waitFor(() => kubelet.devices.length === 16, 10_000, `registration (output: ${out})`);
      const res = await kubelet.allocate([['gpu-0000-01-00-0-s00']]);
      expect(res.container_responses[0]!.envs.EMUV_GPU).toBe('GPU-4f1e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b');
      expect(res.container_responses[0]!.envs.EMUV_SPILL_BACKEND).toBe('pinned');
      const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exit).toBe(0);
      expect(existsSync(join(dpDir, 'emuv-vgpu.sock'))).toBe(false);
      const lines = out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { msg: string });
      expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['registered', 'allocated', 'stopping', 'stopped']));
    } finally {
      child.kill('SIGKILL');
      await kubelet.stop();
    }
  });
});

describe('emuv plugin and emuv top against what a container left in the state directory', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('a FIFO and a symbolic link named stats.bin: the agent starts, registers and reports both; top --state-dir too', async () => {
    const roots = copyNodeFixture('one-gpu', join(tmp.path, 'node'));
    const dpDir = join(tmp.path, 'dp');
    const state = join(tmp.path, 'state');
    mkdirSync(dpDir);
    // What a process in a container can do in its /run/emuv (mode 01777): before the agent (re)starts.
    mkdirSync(join(state, 'gpu-0000-01-00-0-s00'), { recursive: true });
    execFileSync('mkfifo', [join(state, 'gpu-0000-01-00-0-s00', 'stats.bin')]);
    mkdirSync(join(state, 'gpu-0000-01-00-0-s01'));
    symlinkSync('/etc/shadow', join(state, 'gpu-0000-01-00-0-s01', 'stats.bin'));
    const kubelet = new StandInKubelet(dpDir);
    await kubelet.start();
    const child = spawn(
      NODE_BIN,
      [MAIN, 'plugin', ...agentFlags(roots, tmp.path, dpDir, '--gpu-memory=0000:01:00.0=8Gi', '--metrics-addr=127.0.0.1:0')],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await kubelet.waitFor(() => kubelet.devices.length === 16, 10_000, `registration (output: ${out})`);
      await waitUntil(() => /"msg":"http listening"/.test(out), 5000, 'the http server');
      const port = /"port":(\d+),"msg":"http listening"/.exec(out)![1];
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as {
        containers: { allocId: string; error: string }[];
      };
      expect(status.containers.map((c) => [c.allocId, c.error])).toEqual([
        ['gpu-0000-01-00-0-s00', 'not read: it is a FIFO; a stats file is a regular file'],
        ['gpu-0000-01-00-0-s01', 'not read: it is a symbolic link; a stats file is a regular file'],
      ]);
    } finally {
      child.kill('SIGKILL');
      await kubelet.stop();
    }
    const top = await runEmuv(['top', '--once', `--state-dir=${state}`]);
    expect(top.status).toBe(0);
    expect(top.stdout).toContain('(gpu-0000-01-00-0-s00)');
    expect(top.stdout).toContain('stats unreadable: not read: it is a FIFO');
  });

  it('emuv top --state-dir of a directory that does not exist exits 2 and says so', async () => {
    const r = await runEmuv(['top', '--once', `--state-dir=${join(tmp.path, 'nonexistent')}`]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      `emuv: --state-dir ${join(tmp.path, 'nonexistent')}: no such directory; expected the agent's state directory (default /run/emuv on the node)\n`,
    );
  });
});

describe('emuv plugin: a start-up failure', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('a busy metrics port: exits 1 with one line naming the flag, and leaves nothing registered', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as { port: number }).port;
    const roots = copyNodeFixture('one-gpu', join(tmp.path, 'node'));
    const dpDir = join(tmp.path, 'dp');
    mkdirSync(dpDir);
    const kubelet = new StandInKubelet(dpDir);
    await kubelet.start();
    try {
      // runEmuv kills the child after 20 s: a half-started agent that never exits fails here with status null.
      const r = await runEmuv([
        'plugin',
        ...agentFlags(roots, tmp.path, dpDir, '--gpu-memory=0000:01:00.0=8Gi', `--metrics-addr=127.0.0.1:${port}`),
      ]);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(`emuv: --metrics-addr 127.0.0.1:${port}: cannot listen: address already in use (EADDRINUSE)\n`);
      expect(kubelet.registrations).toHaveLength(0);
      expect(existsSync(join(dpDir, 'emuv-vgpu.sock'))).toBe(false);
    } finally {
      await kubelet.stop();
      await new Promise<void>((r) => busy.close(() => r()));
    }
  });

  it('a KUBECONFIG that cannot be read, with no --kubeconfig: the line names KUBECONFIG', () => {
    const kubeconfig = join(tmp.path, 'nope-env');
    const r = run(
      [
        'plugin',
        '--node-name=n',
        ...agentFlags(copyNodeFixture('one-gpu', join(tmp.path, 'n3')), tmp.path, join(tmp.path, 'dp3')).slice(1),
      ],
      { KUBECONFIG: kubeconfig },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`emuv: KUBECONFIG=${kubeconfig}: cannot load: no such file or directory (ENOENT)\n`);
  });

  it('a kubeconfig that cannot be read: one plain line naming --kubeconfig, not a JSON blob', () => {
    const r = run([
      'plugin',
      '--node-name=n',
      `--kubeconfig=${join(tmp.path, 'nope')}`,
      ...agentFlags(copyNodeFixture('one-gpu', join(tmp.path, 'n2')), tmp.path, join(tmp.path, 'dp2')).slice(1),
    ]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`emuv: --kubeconfig ${join(tmp.path, 'nope')}: cannot load: no such file or directory (ENOENT)\n`);
  });
});

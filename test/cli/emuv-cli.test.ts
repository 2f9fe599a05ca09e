/**
 * The `emuv` command as a user runs it: a separate Node 24 process, flags, exit codes, output.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { StandInKubelet } from '../fakes/kubelet.ts';
import { NODE_BIN, NODE_FIXTURES, REPO_ROOT, agentFlags, copyNodeFixture, tempDir } from '../helpers.ts';

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
    expect(r.stdout).toContain('Capacity: emuv.io/vram-virtual 25232932864 (23.5 GiB), emuv.io/vgpu 16');
  });

  it('takes EMUV_* environment equivalents', () => {
    const r = run(['discover', '--json'], {
      EMUV_SYS_ROOT: join(NODE_FIXTURES, 'one-gpu', 'sys'),
      EMUV_PROC_ROOT: join(NODE_FIXTURES, 'one-gpu', 'proc'),
      EMUV_NVML_LIBRARY: 'off',
      EMUV_GPU_MEMORY: '0000:01:00.0=8Gi',
      EMUV_SLOTS_PER_GPU: '4',
    });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).capacity['emuv.io/vgpu']).toBe(4);
  });

  it('exits 2 with one clear line on a bad flag', () => {
    const r = run(['discover', '--slots-per-gpu=lots']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('emuv: --slots-per-gpu lots: expected an integer from 1 to 128\n');
    expect(run(['frobnicate']).status).toBe(2);
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
    const child = spawn(NODE_BIN, [MAIN, 'plugin', ...agentFlags(roots, tmp.path, dpDir, '--gpu-memory=0000:01:00.0=8Gi')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await kubelet.waitFor(() => kubelet.devices.length === 16, 10_000, `registration (output: ${out})`);
      const res = await kubelet.allocate([['gpu-0000-01-00-0-s00']]);
      expect(res.container_responses[0]!.envs.EMUV_GPU).toBe('GPU-4f1e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b');
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

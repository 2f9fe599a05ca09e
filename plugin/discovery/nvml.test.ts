/**
 * The koffi NVML binding against the simulated libnvidia-ml.so.1 (native/sim/simnvml.c), a real
 * shared library loaded with dlopen, the way the agent loads the driver's NVML on a GPU node.
 */
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, tempDir } from '../../localcluster/repo.ts';
import { discoverNode } from './discover.ts';
import { openNvml, type Nvml } from './nvml.ts';

const SIM_NVML = join(REPO_ROOT, 'native', 'build', 'sim', 'libnvidia-ml.so.1');
const tmp = tempDir();
const lostFile = join(tmp.path, 'lost');
let nvml: Nvml;

beforeAll(() => {
  execFileSync('make', ['-C', join(REPO_ROOT, 'native'), '-s', 'build/sim/libnvidia-ml.so.1'], { stdio: 'pipe' });
  // The simulated NVML reads these at call time (setenv through process.env).
  process.env.EMUV_SIM_VRAM = '12Gi';
  process.env.EMUV_SIM_PCI_BUS_ID = '0000:01:00.0';
  process.env.EMUV_SIM_NVML_LOST = lostFile;
  const r = openNvml(SIM_NVML);
  if (!r.nvml) throw new Error(r.reason);
  nvml = r.nvml;
});

afterAll(() => {
  nvml?.close();
  delete process.env.EMUV_SIM_VRAM;
  delete process.env.EMUV_SIM_PCI_BUS_ID;
  delete process.env.EMUV_SIM_NVML_LOST;
  tmp.cleanup();
});

describe('NVML through koffi', () => {
  it('reads UUID, name, minor, memory and the PCI address normalised to sysfs form', () => {
    expect(nvml.gpus()).toEqual([
      {
        pciAddress: '0000:01:00.0',
        uuid: 'GPU-00000000-0000-0000-0000-000000000e11',
        name: 'NVIDIA GeForce RTX 4060 (simulated)',
        minor: 0,
        memoryBytes: 12 * 2 ** 30,
      },
    ]);
  });

  it('feeds discovery: NVML identity and VRAM win over /proc and --gpu-memory', () => {
    const root = join(REPO_ROOT, 'test', 'fixtures', 'nodes', 'one-gpu');
    const node = discoverNode({
      sysRoot: join(root, 'sys'),
      procRoot: join(root, 'proc'),
      nvml,
      gpuMemory: new Map([['0000:01:00.0', 8 * 2 ** 30]]),
    });
    expect(node.gpus[0]).toMatchObject({
      vramBytes: 12 * 2 ** 30,
      vramSource: 'nvml',
      driverInfoSource: 'nvml',
      name: 'NVIDIA GeForce RTX 4060 (simulated)',
    });
  });

  it('reports the GPU lost while NVML says so, and back when it recovers', () => {
    expect(nvml.isLost('0000:01:00.0')).toBe(false);
    writeFileSync(lostFile, '');
    expect(nvml.isLost('0000:01:00.0')).toBe(true);
    rmSync(lostFile);
    expect(nvml.isLost('0000:01:00.0')).toBe(false);
    expect(nvml.isLost('0000:02:00.0')).toBe(true); // not listed by NVML at all
  });

  it('says why when the library is missing or lacks the calls emuv needs', () => {
    const missing = openNvml(join(tmp.path, 'libnvidia-ml.so.1'));
    expect(missing.nvml).toBeNull();
    expect(missing.nvml === null && missing.reason).toMatch(/^cannot load .*libnvidia-ml\.so\.1/);
    const wrong = openNvml('libc.so.6');
    expect(wrong.nvml === null && wrong.reason).toContain('lacks nvmlInit_v2');
  });
});

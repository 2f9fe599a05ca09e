import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NODE_FIXTURES, copyNodeFixture, tempDir } from '../../localcluster/repo.ts';
import { buildInventory } from '../inventory/inventory.ts';
import { DEFAULT_CAPACITY_CONFIG } from '../inventory/capacity.ts';
import { discoverNode } from './discover.ts';
import type { Nvml, NvmlGpu } from './nvml.ts';
import { normalizePciAddress } from './nvml.ts';
import { pcieBandwidth } from './pci-scan.ts';
import { MAX_HOST_MEMORY_BYTES, parseMemTotal, parseNvidiaInformation } from './procfs.ts';

const GiB = 1024 ** 3;

function discover(fixture: string, gpuMemory: Record<string, number> = {}, nvml: Nvml | null = null) {
  const root = join(NODE_FIXTURES, fixture);
  return discoverNode({ sysRoot: join(root, 'sys'), procRoot: join(root, 'proc'), nvml, gpuMemory: new Map(Object.entries(gpuMemory)) });
}

describe('PCI discovery on fixture trees', () => {
  it('one GPU: address, IDs, driver, link and the spill bandwidth it implies, identity from /proc', () => {
    const n = discover('one-gpu', { '0000:01:00.0': 8 * GiB });
    expect(n.gpus).toHaveLength(1);
    const g = n.gpus[0]!;
    expect(g.pci).toMatchObject({
      address: '0000:01:00.0',
      vendorId: 0x10de,
      deviceId: 0x2882,
      subsystemVendorId: 0x1043,
      subsystemDeviceId: 0x8910,
    });
    expect(g.pci).toMatchObject({ classCode: 0x030000, numaNode: -1, driver: 'nvidia' });
    // PCIe 4.0: 16 GT/s per lane, 128b/130b encoding, 8 bits a byte -> 16e9 * 128/130 / 8 bytes/s a lane, x8.
    expect(g.pci.link).toEqual({
      speed: '16.0 GT/s PCIe',
      gtPerSec: 16,
      width: 8,
      bandwidthBytesPerSec: Math.floor(((16e9 * 128) / 130 / 8) * 8),
    });
    expect(g).toMatchObject({ uuid: 'GPU-4f1e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b', name: 'NVIDIA GeForce RTX 4060', minor: 0 });
    expect(g).toMatchObject({ vramBytes: 8 * GiB, vramSource: 'flag', driverInfoSource: 'proc', offered: true, reason: null });
    expect(n.hostMemoryBytes).toBe(32 * GiB);
    expect(n.problems).toEqual([]);
  });

  it('two GPUs on NUMA nodes 0 and 1 (3D controller class)', () => {
    const n = discover('two-gpus-numa', { '0000:17:00.0': 80 * GiB, '0000:65:00.0': 80 * GiB });
    expect(n.gpus.map((g) => [g.pci.address, g.pci.numaNode, g.pci.classCode, g.minor])).toEqual([
      ['0000:17:00.0', 0, 0x030200, 0],
      ['0000:65:00.0', 1, 0x030200, 1],
    ]);
  });

  it("ignores an Intel iGPU and the NVIDIA card's audio function", () => {
    const n = discover('igpu-and-nvidia', { '0000:01:00.0': 16 * GiB });
    expect(n.gpus.map((g) => g.pci.address)).toEqual(['0000:01:00.0']);
    expect(n.gpus[0]!.name).toBe('NVIDIA GeForce RTX 4080');
  });

  it('reports GPUs bound to vfio-pci or to no driver, but does not offer them', () => {
    const n = discover('vfio', { '0000:01:00.0': 24 * GiB, '0000:02:00.0': 24 * GiB, '0000:03:00.0': 24 * GiB });
    expect(n.gpus.map((g) => [g.pci.address, g.offered, g.reason])).toEqual([
      ['0000:01:00.0', false, 'bound to vfio-pci (passed through to a VM)'],
      ['0000:02:00.0', true, null],
      ['0000:03:00.0', false, 'no kernel driver bound'],
    ]);
  });

  it('does not offer a GPU whose VRAM is unknown, and says how to fix it', () => {
    const n = discover('one-gpu');
    expect(n.gpus[0]!.offered).toBe(false);
    expect(n.gpus[0]!.reason).toContain('--gpu-memory 0000:01:00.0=<size>');
  });

  it('missing numa_node: no affinity, with a problem saying so', () => {
    const n = discover('missing-numa', { '0000:01:00.0': 8 * GiB });
    expect(n.gpus[0]!.pci.numaNode).toBe(-1);
    expect(n.gpus[0]!.offered).toBe(true);
    expect(n.problems).toEqual([{ subject: '0000:01:00.0', message: 'numa_node missing; assuming no NUMA affinity' }]);
  });

  it('garbage and truncated attribute files: clear problems, the rest of the node still works', () => {
    const n = discover('garbage', { '0000:01:00.0': 8 * GiB, '0000:04:00.0': 8 * GiB });
    expect(n.gpus.map((g) => g.pci.address)).toEqual(['0000:01:00.0', '0000:04:00.0']);
    expect(n.gpus.every((g) => g.offered)).toBe(true);
    const gpu4 = n.gpus[1]!;
    expect(gpu4.pci.numaNode).toBe(-1);
    expect(gpu4.pci.link.bandwidthBytesPerSec).toBeNull();
    expect(gpu4).toMatchObject({ uuid: null, name: null, minor: null });
    const messages = n.problems.map((p) => `${p.subject.replace(/.*gpus\//, '')}: ${p.message}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^0000:02:00.0: vendor not a hex number: .*; device skipped$/),
        '0000:03:00.0: NVIDIA device with class not a hex number: ""; device skipped',
        '0000:04:00.0: numa_node: cannot parse "banana"; assuming no NUMA affinity',
        '0000:04:00.0: current_link_speed: cannot parse "fast"',
        '0000:04:00.0: current_link_width: cannot parse "sixteen"',
        '0000:04:00.0/information: no valid "GPU UUID:" line (got "not-a-uuid")',
      ]),
    );
    expect(n.hostMemoryBytes).toBeNull();
    expect(messages.some((m) => m.includes('meminfo') && m.includes('host spill budget is 0'))).toBe(true);
  });

  it('a missing sys root is one problem that names the flag to check', () => {
    const n = discoverNode({ sysRoot: '/nonexistent', procRoot: '/nonexistent', nvml: null, gpuMemory: new Map() });
    expect(n.gpus).toEqual([]);
    expect(n.problems[0]!.message).toContain('is --sys-root right?');
  });

  it('--gpu-memory for an address without a GPU is reported', () => {
    const n = discover('one-gpu', { '0000:01:00.0': 8 * GiB, '0000:09:00.0': 8 * GiB });
    expect(n.problems).toEqual([{ subject: '0000:09:00.0', message: '--gpu-memory names a PCI address with no NVIDIA GPU; ignored' }]);
  });
});

describe('NVML answers take precedence', () => {
  it('uses NVML identity and memory, matched by PCI address', () => {
    const fromNvml: NvmlGpu = {
      pciAddress: '0000:01:00.0',
      uuid: 'GPU-aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee',
      name: 'NVIDIA GeForce RTX 4060 Ti',
      minor: 3,
      memoryBytes: 16 * GiB,
    };
    const nvml: Nvml = { gpus: () => [fromNvml], isLost: () => false, close: () => {} };
    const n = discover('one-gpu', { '0000:01:00.0': 8 * GiB }, nvml);
    expect(n.gpus[0]).toMatchObject({
      uuid: fromNvml.uuid,
      name: fromNvml.name,
      minor: 3,
      vramBytes: 16 * GiB,
      vramSource: 'nvml',
      driverInfoSource: 'nvml',
    });
    expect(n.nvml).toBe(true);
  });

  it('normalises NVML bus IDs to sysfs addresses', () => {
    expect(normalizePciAddress('00000000:01:00.0')).toBe('0000:01:00.0');
    expect(normalizePciAddress('0000:AF:00.1')).toBe('0000:af:00.1');
    expect(normalizePciAddress('1:00.0')).toBeNull();
    expect(normalizePciAddress('00010000:01:00.0')).toBeNull();
  });
});

describe('driver information file and PCIe arithmetic', () => {
  it('parses the driver information format', () => {
    const problems: { subject: string; message: string }[] = [];
    const info = parseNvidiaInformation(
      'Model: \t\t NVIDIA H100 80GB HBM3\nGPU UUID: \t GPU-0a1b2c3d-0000-4000-8000-000000000017\nDevice Minor: \t 7\n',
      'f',
      problems,
    );
    expect(info).toEqual({ name: 'NVIDIA H100 80GB HBM3', uuid: 'GPU-0a1b2c3d-0000-4000-8000-000000000017', minor: 7, memoryBytes: null });
    expect(problems).toEqual([]);
  });

  it.each([
    [2.5, 16, 4_000_000_000],
    [8, 16, 15_753_846_153],
    [16, 16, 31_507_692_307],
    [32, 16, 63_015_384_615],
    [64, 16, 121_000_000_000],
  ])('%s GT/s x%s = %s B/s', (gt, w, bytes) => {
    expect(pcieBandwidth(gt, w)).toBe(bytes);
  });
});

describe('numbers and identities discovery must not trust', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());
  let n = 0;
  const node = () => copyNodeFixture('one-gpu', join(tmp.path, `node-${n++}`));

  it.each([
    ['MemTotal:       32768000 kB\nMemFree: 1 kB\n', 32768000 * 1024],
    ['MemTotal:\t1 kB\n', 1024],
    [`MemTotal: ${MAX_HOST_MEMORY_BYTES / 1024} kB\n`, MAX_HOST_MEMORY_BYTES],
  ])('MemTotal %j is %d bytes', (text, bytes) => {
    expect(parseMemTotal(text)).toEqual({ bytes });
  });

  it.each([
    // 999999999999999 kB read as bytes published a 465,661 TiB spill budget, past 2^53 where numbers are inexact.
    ['MemTotal: 999999999999999 kB\n', 'MemTotal 999999999999999 kB is more than 4 PiB, more than any machine can address'],
    [
      `MemTotal: ${MAX_HOST_MEMORY_BYTES / 1024 + 1} kB\n`,
      `MemTotal ${MAX_HOST_MEMORY_BYTES / 1024 + 1} kB is more than 4 PiB, more than any machine can address`,
    ],
    ['MemTotal: 0 kB\n', 'MemTotal is 0 kB'],
    ['MemTotal: 32768000 kB\nMemTotal: 65536000 kB\n', '2 "MemTotal:" lines; expected one'],
    ['MemFree: 1 kB\n', 'no "MemTotal:" line'],
    ['MemTotal: 12 MB\n', 'cannot parse "MemTotal: 12 MB"; expected "MemTotal: <n> kB"'],
  ])('MemTotal in %j is refused: %s', (text, reason) => {
    expect(parseMemTotal(text)).toEqual({ bytes: null, reason });
  });

  it('a refused MemTotal is a problem and a spill budget of 0, not a huge budget', () => {
    const roots = node();
    writeFileSync(join(roots.proc, 'meminfo'), 'MemTotal: 999999999999999 kB\n');
    const d = discoverNode({ sysRoot: roots.sys, procRoot: roots.proc, nvml: null, gpuMemory: new Map([['0000:01:00.0', 8 * GiB]]) });
    expect(d.hostMemoryBytes).toBeNull();
    expect(buildInventory(d, DEFAULT_CAPACITY_CONFIG).hostBudgetBytes).toBe(0);
    expect(d.problems.map((p) => p.message)).toContain(
      'MemTotal 999999999999999 kB is more than 4 PiB, more than any machine can address; host spill budget is 0',
    );
  });

  it('two sysfs names for one PCI address (they differ in case) are one GPU, and the other name is reported', () => {
    const roots = node();
    const devices = join(roots.sys, 'bus', 'pci', 'devices');
    cpSync(join(devices, '0000:01:00.0'), join(devices, '0000:0a:00.0'), { recursive: true, verbatimSymlinks: true });
    cpSync(join(devices, '0000:01:00.0'), join(devices, '0000:0A:00.0'), { recursive: true, verbatimSymlinks: true });
    const d = discoverNode({
      sysRoot: roots.sys,
      procRoot: roots.proc,
      nvml: null,
      gpuMemory: new Map([
        ['0000:01:00.0', 8 * GiB],
        ['0000:0a:00.0', 8 * GiB],
      ]),
    });
    expect(d.gpus.map((g) => g.pci.address)).toEqual(['0000:01:00.0', '0000:0a:00.0']);
    expect(d.problems).toContainEqual({
      subject: '0000:0a:00.0',
      message: '0000:0A:00.0 names the same PCI function as 0000:0a:00.0 (the case differs); ignored',
    });
    expect(buildInventory(d, DEFAULT_CAPACITY_CONFIG).vgpuCount).toBe(32);
  });

  it('two GPUs that report one UUID: neither is offered, and the reason names the other', () => {
    const uuid = 'GPU-aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
    const gpu = (pciAddress: string): NvmlGpu => ({ pciAddress, uuid, name: 'NVIDIA L4', minor: 0, memoryBytes: 24 * GiB });
    const nvml: Nvml = { gpus: () => [gpu('0000:17:00.0'), gpu('0000:65:00.0')], isLost: () => false, close: () => {} };
    const d = discover('two-gpus-numa', {}, nvml);
    expect(d.gpus.map((g) => [g.pci.address, g.offered, g.reason])).toEqual([
      ['0000:17:00.0', false, `UUID ${uuid} is also reported for 0000:65:00.0: a UUID names one GPU, so neither is offered`],
      ['0000:65:00.0', false, `UUID ${uuid} is also reported for 0000:17:00.0: a UUID names one GPU, so neither is offered`],
    ]);
    expect(buildInventory(d, DEFAULT_CAPACITY_CONFIG).vgpuCount).toBe(0);
  });
});

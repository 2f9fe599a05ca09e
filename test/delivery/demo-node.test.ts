// The cluster demo's node and workload pod (localcluster/gpu-node.ts, emuv-demo.ts), for both kinds of machine. The
// simulated kind runs in delivery-e2e.test.ts; a machine with a GPU is stood in for here by the simulated
// driver's libraries in the place of the host's (what differs is only where things come from).
import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { demoPod, prepareGpuNode, REPO_ROOT, tempDir } from '../../localcluster/index.ts';

const sim = join(REPO_ROOT, 'native/build/sim');
const hostLike = { libcuda: join(sim, 'libcuda.so.1'), libnvml: join(sim, 'libnvidia-ml.so.1') };
const tmp = tempDir('emuv-demo-node-');
afterAll(() => tmp.cleanup());

describe('the demo node', () => {
  it('without a GPU: the fixture GeForce under the run directory, 8 GiB given to the agent, the simulated card in the pod', () => {
    const node = prepareGpuNode(tmp.path, null);
    expect(node.sys.startsWith(tmp.path)).toBe(true);
    expect(existsSync(join(node.sys, 'bus/pci/devices'))).toBe(true);
    expect(node.gpuMemory).toEqual(['0000:01:00.0=8Gi']);
    const spec = demoPod(node).spec;
    expect(spec.containers[0].env).toEqual([
      { name: 'EMUV_SIM_VRAM', value: '8Gi' },
      { name: 'EMUV_SIM_PCI_BUS_ID', value: '0000:01:00.0' },
    ]);
    expect(spec.volumes).toEqual([]);
  });

  it("with a GPU: the host's sysfs, VRAM from its NVML, its driver libraries mounted where the toolkit puts them", () => {
    process.env.EMUV_SIM_VRAM = '12Gi';
    process.env.EMUV_SIM_PCI_BUS_ID = '0000:41:00.0';
    try {
      const node = prepareGpuNode(tmp.path, hostLike);
      expect([node.sys, node.proc, node.dev]).toEqual(['/sys', '/proc', '/dev']);
      expect(node.gpuMemory).toEqual([`0000:41:00.0=${12 * 2 ** 30}`]);
      const spec = demoPod(node).spec;
      expect(spec.containers[0].env).toEqual([]);
      expect(spec.containers[0].volumeMounts).toEqual([
        { name: 'libcuda', mountPath: '/usr/lib/x86_64-linux-gnu/libcuda.so.1', readOnly: true },
        { name: 'libnvml', mountPath: '/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1', readOnly: true },
      ]);
      expect(spec.volumes).toEqual([
        { name: 'libcuda', hostPath: { path: realpathSync(hostLike.libcuda), type: 'File' } },
        { name: 'libnvml', hostPath: { path: realpathSync(hostLike.libnvml), type: 'File' } },
      ]);
    } finally {
      delete process.env.EMUV_SIM_VRAM;
      delete process.env.EMUV_SIM_PCI_BUS_ID;
    }
  });
});

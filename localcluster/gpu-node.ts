// The node's GPU for the demos and the cluster tests: this machine's NVIDIA GPU and driver when it has one,
// else the SIMULATED 8 GiB GeForce (the sysfs/procfs fixture test/fixtures/nodes/demo-geforce, device nodes
// with /dev/null's numbers, the simulated driver from native/build/sim). Each caller says which it shows.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { openNvml } from '../plugin/discovery/nvml.ts';
import { REPO_ROOT } from './repo.ts';

// The host's driver is found by the same code `emuv run` uses.
export { hostDriver, type HostDriver } from '../plugin/discovery/host-driver.ts';
import type { HostDriver } from '../plugin/discovery/host-driver.ts';

/** The device nodes of one NVIDIA GPU, as the driver makes them under /dev. */
export const NVIDIA_DEVICE_NODES = ['nvidia0', 'nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools'];

/**
 * Stand-ins for a GPU's device nodes in `dir`: character devices with /dev/null's numbers, so the container
 * runtime creates them in containers the way it creates a GPU's. Needs root (mknod).
 */
export function makeStandInDevices(dir: string, names: string[] = NVIDIA_DEVICE_NODES): void {
  mkdirSync(dir, { recursive: true });
  for (const d of names) {
    const r = spawnSync('mknod', ['-m', '0666', path.join(dir, d), 'c', '1', '3'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mknod ${d}: ${r.stderr}`);
  }
}

/** The PCI address of the simulated GeForce (the demo-geforce fixture and the simulated driver agree on it). */
export const SIMULATED_GPU = '0000:01:00.0';
export const SIMULATED_VRAM = '8Gi';

/** Host directories of the node's GPU and of what the agent puts on the node. */
export interface GpuNode {
  sys: string;
  proc: string;
  dev: string;
  state: string;
  interposer: string;
  /** VRAM per GPU for the agent (`agent.gpuMemory`): its container has no NVML here. */
  gpuMemory: string[];
  /** This machine's driver; null: the simulated GeForce. */
  driver: HostDriver | null;
}

/**
 * Lays the node out under <runDir>/gpu-node: with `driver` null, the simulated GPU (the fixture's sysfs/procfs
 * and stand-in device nodes); with this machine's driver, points at the host's own and asks its NVML for VRAM.
 */
export function prepareGpuNode(runDir: string, driver: HostDriver | null = null): GpuNode {
  const root = path.join(runDir, 'gpu-node');
  rmSync(root, { recursive: true, force: true });
  const state = path.join(root, 'run-emuv');
  const interposer = path.join(root, 'usr-local-emuv');
  for (const d of [state, interposer]) mkdirSync(d, { recursive: true });
  if (driver) {
    const opened = openNvml(driver.libnvml);
    if (!opened.nvml) throw new Error(`NVML of this machine: ${opened.reason}`);
    const gpuMemory = opened.nvml.gpus().map((g) => `${g.pciAddress}=${g.memoryBytes}`);
    opened.nvml.close();
    return { sys: '/sys', proc: '/proc', dev: '/dev', state, interposer, gpuMemory, driver };
  }
  const fixture = path.join(REPO_ROOT, 'test/fixtures/nodes/demo-geforce');
  const n: GpuNode = {
    sys: path.join(root, 'sys'),
    proc: path.join(root, 'proc'),
    dev: path.join(root, 'dev'),
    state,
    interposer,
    gpuMemory: [`${SIMULATED_GPU}=${SIMULATED_VRAM}`],
    driver: null,
  };
  cpSync(path.join(fixture, 'sys'), n.sys, { recursive: true, verbatimSymlinks: true });
  cpSync(path.join(fixture, 'proc'), n.proc, { recursive: true, verbatimSymlinks: true });
  makeStandInDevices(n.dev);
  return n;
}

/**
 * `npm run demo:local` (the node-side pipeline without a cluster or root), run as a user runs it, with its story asserted: a 28 GiB
 * card seen by an unmodified workload, 20 GiB allocated, VRAM used up to the share and the rest
 * spilled, all of it visible in /status, /metrics and emuv top.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_BIN, REPO_ROOT } from '../../localcluster/index.ts';

function runDemo(): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(NODE_BIN, [join(REPO_ROOT, 'scripts', 'demo-local.ts')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('npm run demo:local', () => {
  it('shows a 28 GiB card on a simulated 8 GiB GeForce, and the spill in every view', async () => {
    const { code, out } = await runDemo();
    expect(code, out).toBe(0);
    expect(out).toContain('SIMULATED: no NVIDIA GPU here');
    // The demo GeForce: 8 GiB less the 512 MiB reserve, plus min(50 % of its 48 GiB, 48 - 8 GiB) = 24 GiB spill.
    expect(out).toContain(`Capacity: emuv.io/vram-virtual ${8 * 2 ** 30 - 512 * 2 ** 20 + 24 * 2 ** 30} (31.5 GiB), emuv.io/vgpu 16`);
    expect(out).toContain(`add /spec/containers/0/env [{"name":"EMUV_LIMIT_BYTES","value":"${28 * 2 ** 30}"}]`);
    expect(out).toContain('card: cuMemGetInfo total 28.0 GiB free 28.0 GiB; cuDeviceTotalMem 28.0 GiB; NVML total 28.0 GiB');
    expect(out).toContain('allocated 20 x 1 GiB through cuMemAlloc');
    expect(out).toContain('data check on the last tensor: ok');
    const m = /\/status: demo\/llm-0\/main: limit 28\.0 GiB, VRAM ([0-9.]+) GiB, spilled to host RAM ([0-9.]+) GiB/.exec(out);
    expect(m, out).not.toBeNull();
    const [vram, spill] = [Number(m![1]), Number(m![2])];
    expect(vram).toBeGreaterThan(5);
    expect(vram).toBeLessThanOrEqual(7.5);
    expect(vram + spill).toBeCloseTo(20, 1);
    expect(out).toMatch(
      /emuv_container_host_spill_bytes\{namespace="demo",pod="llm-0",container="main",gpu="GPU-[0-9a-f-]+"\} [1-9][0-9]+/,
    );
    expect(out).toMatch(/demo\/llm-0\/main +28\.0G +[0-9.]+G +1[0-9]\.[0-9]G/);
    expect(out).toContain('Nothing is left running');
  });
});

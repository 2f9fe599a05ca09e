/**
 * The device plugin against a stand-in kubelet over real gRPC on unix sockets: registration,
 * ListAndWatch across health changes, GetPreferredAllocation, Allocate, a kubelet restart, garbage
 * requests. The agent runs in-process with the same wiring as `emuv plugin --node-status=off`.
 */
import { credentials, Client, status, type ServiceError } from '@grpc/grpc-js';
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nopLogger } from '../../common/log.ts';
import { startAgent, type AgentHandle } from '../../plugin/agent/agent.ts';
import { parsePluginConfig } from '../../plugin/config.ts';
import { StandInKubelet } from '../../localcluster/stand-in-kubelet.ts';
import { copyNodeFixture, tempDir } from '../../localcluster/repo.ts';
import { agentFlags } from '../helpers.ts';

let tmp: ReturnType<typeof tempDir>;
let kubelet: StandInKubelet;
let agent: AgentHandle | null;

async function startOn(fixture: string, extra: string[] = []) {
  const roots = copyNodeFixture(fixture, join(tmp.path, 'node'));
  const dpDir = join(tmp.path, 'device-plugins');
  mkdirSync(dpDir);
  kubelet = new StandInKubelet(dpDir);
  await kubelet.start();
  const cfg = parsePluginConfig(agentFlags(roots, tmp.path, dpDir, '--metrics-addr=127.0.0.1:0', ...extra), {});
  agent = await startAgent(cfg, { logger: nopLogger, nvml: null, healthPollMs: 100 });
  await kubelet.waitFor(() => kubelet.devices.length > 0, 5000, 'first ListAndWatch message');
  return { roots, dpDir };
}

beforeEach(() => {
  tmp = tempDir();
  agent = null;
});

afterEach(async () => {
  await agent?.stop();
  await kubelet?.stop();
  tmp.cleanup();
});

describe('registration and ListAndWatch', () => {
  it('registers emuv.io/vgpu with v1beta1 and streams 16 healthy slots per GPU with NUMA topology', async () => {
    await startOn('two-gpus-numa', ['--gpu-memory=0000:17:00.0=80Gi', '--gpu-memory=0000:65:00.0=80Gi']);
    const reg = kubelet.current!;
    expect(reg.request).toMatchObject({ version: 'v1beta1', endpoint: 'emuv-vgpu.sock', resource_name: 'emuv.io/vgpu' });
    expect(reg.options).toEqual({ pre_start_required: false, get_preferred_allocation_available: true });
    const devices = kubelet.devices;
    expect(devices).toHaveLength(32);
    expect(devices.every((d) => d.health === 'Healthy')).toBe(true);
    expect(devices.find((d) => d.ID === 'gpu-0000-17-00-0-s00')?.topology?.nodes).toEqual([{ ID: 0 }]);
    expect(devices.find((d) => d.ID === 'gpu-0000-65-00-0-s15')?.topology?.nodes).toEqual([{ ID: 1 }]);
  });

  it('sends no topology for a GPU without NUMA affinity', async () => {
    await startOn('one-gpu', ['--gpu-memory=0000:01:00.0=8Gi']);
    expect(kubelet.devices[0]).toMatchObject({ ID: 'gpu-0000-01-00-0-s00', health: 'Healthy', topology: null });
  });

  it('marks a GPU unhealthy when its device node or PCI device disappears, and healthy again when it returns', async () => {
    const { roots } = await startOn('one-gpu', ['--gpu-memory=0000:01:00.0=8Gi']);
    const allAre = (h: string) => () => kubelet.devices.length === 16 && kubelet.devices.every((d) => d.health === h);
    // The bounds are liveness (the change arrives at all), not speed: how fast it arrives is measured by
    // `npm run bench` (bench/deviceplugin.ts, healthToUnhealthyMs).
    const dev0 = join(roots.dev, 'nvidia0');
    rmSync(dev0);
    await kubelet.waitFor(allAre('Unhealthy'), 10_000, 'slots unhealthy after /dev/nvidia0 vanished');
    writeFileSync(dev0, '');
    await kubelet.waitFor(allAre('Healthy'), 10_000, 'slots healthy again');
    const pciDir = join(roots.sys, 'bus/pci/devices/0000:01:00.0');
    renameSync(pciDir, `${pciDir}.gone`);
    await kubelet.waitFor(allAre('Unhealthy'), 10_000, 'slots unhealthy after the PCI device vanished');
    renameSync(`${pciDir}.gone`, pciDir);
    await kubelet.waitFor(allAre('Healthy'), 10_000, 'slots healthy after the PCI device returned');
  });
});

describe('GetPreferredAllocation', () => {
  it('keeps a container on one GPU, the one with the most free slots', async () => {
    await startOn('two-gpus-numa', ['--gpu-memory=0000:17:00.0=80Gi', '--gpu-memory=0000:65:00.0=80Gi']);
    const all = kubelet.devices.map((d) => d.ID);
    const available = all.filter((id) => !/gpu-0000-65-00-0-s0[0-9]/.test(id)); // GPU 1 has 6 free, GPU 0 has 16
    const res = await kubelet.preferred(available, [], 2);
    expect(res.container_responses[0]!.deviceIDs).toEqual(['gpu-0000-17-00-0-s00', 'gpu-0000-17-00-0-s01']);
    const withMust = await kubelet.preferred(available, ['gpu-0000-65-00-0-s12'], 2);
    expect(withMust.container_responses[0]!.deviceIDs).toEqual(['gpu-0000-65-00-0-s12', 'gpu-0000-65-00-0-s10']);
  });
});

describe('Allocate', () => {
  it('returns device nodes, interposer mounts, a fresh stats directory and the EMUV_* environment', async () => {
    const libs = join(tmp.path, 'libs');
    mkdirSync(libs);
    writeFileSync(join(libs, 'libemuv-cuda.so'), 'cuda shim');
    writeFileSync(join(libs, 'libemuv-nvml.so'), 'nvml shim');
    const { roots } = await startOn('one-gpu', [
      '--gpu-memory=0000:01:00.0=8Gi',
      `--interposer-source=${libs}`,
      '--slots-per-gpu=4',
      '--vram-mode=fixed',
    ]);
    const stale = join(tmp.path, 'state', 'gpu-0000-01-00-0-s02');
    mkdirSync(stale, { recursive: true });
    writeFileSync(join(stale, 'stats.bin'), 'from the previous container');

    const res = await kubelet.allocate([['gpu-0000-01-00-0-s02']]);
    const c = res.container_responses[0]!;
    const usable = 8 * 1024 ** 3 - 512 * 1024 ** 2;
    expect(c.envs).toEqual({
      EMUV_CONTRACT_VERSION: '1',
      EMUV_GPU: 'GPU-4f1e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b',
      EMUV_VRAM_SHARE: String(usable / 4),
      EMUV_VRAM_MODE: 'fixed',
      EMUV_SPILL_BACKEND: 'auto',
      EMUV_STATS_FILE: '/run/emuv/stats.bin',
      NVIDIA_VISIBLE_DEVICES: 'GPU-4f1e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b',
      NVIDIA_DRIVER_CAPABILITIES: 'compute,utility',
    });
    expect(c.devices.map((d) => [d.container_path, d.host_path, d.permissions])).toEqual([
      ['/dev/nvidiactl', join(roots.dev, 'nvidiactl'), 'rw'],
      ['/dev/nvidia-uvm', join(roots.dev, 'nvidia-uvm'), 'rw'],
      ['/dev/nvidia-uvm-tools', join(roots.dev, 'nvidia-uvm-tools'), 'rw'],
      ['/dev/nvidia0', join(roots.dev, 'nvidia0'), 'rw'],
    ]);
    const interposer = join(tmp.path, 'interposer');
    expect(c.mounts).toEqual([
      { container_path: '/usr/local/emuv/lib', host_path: join(interposer, 'lib'), read_only: true },
      { container_path: '/etc/ld.so.preload', host_path: join(interposer, 'ld.so.preload'), read_only: true },
      { container_path: '/run/emuv', host_path: stale, read_only: false },
    ]);
    expect(readFileSync(join(interposer, 'ld.so.preload'), 'utf8')).toBe(
      '/usr/local/emuv/lib/libemuv-cuda.so\n/usr/local/emuv/lib/libemuv-nvml.so\n',
    );
    expect(readFileSync(join(interposer, 'lib', 'libemuv-cuda.so'), 'utf8')).toBe('cuda shim');
    expect(readlinkSync(join(interposer, 'lib', 'libemuv-real-cuda.so'))).toBe('/usr/lib/x86_64-linux-gnu/libcuda.so.1');
    expect(statSync(stale).mode & 0o7777).toBe(0o1777);
    // The old container's file is gone; in its place an empty one, owned like its directory (so that
    // fs.protected_regular lets every UID of the container open it with O_CREAT), writable by all.
    const stats = statSync(join(stale, 'stats.bin'));
    expect([stats.isFile(), stats.size, stats.mode & 0o7777, stats.uid]).toEqual([true, 0, 0o666, statSync(stale).uid]);
  });

  it('omits device nodes that do not exist and mounts no interposer it does not have', async () => {
    const { roots } = await startOn('one-gpu', ['--gpu-memory=0000:01:00.0=8Gi']);
    rmSync(join(roots.dev, 'nvidia-uvm-tools'));
    const c = (await kubelet.allocate([['gpu-0000-01-00-0-s00']])).container_responses[0]!;
    expect(c.devices.map((d) => d.container_path)).toEqual(['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia0']);
    expect(c.mounts.map((m) => m.container_path)).toEqual(['/run/emuv']);
    expect(c.envs.EMUV_VRAM_MODE).toBe('fill');
    expect(c.envs.EMUV_VRAM_SHARE).toBe(String(8 * 1024 ** 3 - 512 * 1024 ** 2));
  });

  it('rejects unknown IDs and IDs spanning GPUs with INVALID_ARGUMENT naming them, and keeps serving', async () => {
    await startOn('two-gpus-numa', ['--gpu-memory=0000:17:00.0=80Gi', '--gpu-memory=0000:65:00.0=80Gi']);
    const err1 = (await kubelet.allocate([['gpu-0000-17-00-0-s00', 'bogus-1', 'gpu-9']]).catch((e: ServiceError) => e)) as ServiceError;
    expect(err1.code).toBe(status.INVALID_ARGUMENT);
    expect(err1.details).toBe('2 unknown device IDs: bogus-1, gpu-9');
    const err2 = (await kubelet.allocate([['gpu-0000-17-00-0-s00', 'gpu-0000-65-00-0-s00']]).catch((e: ServiceError) => e)) as ServiceError;
    expect(err2.code).toBe(status.INVALID_ARGUMENT);
    expect(err2.details).toContain('span GPUs');
    expect(err2.details).toContain('0000:17:00.0: gpu-0000-17-00-0-s00; 0000:65:00.0: gpu-0000-65-00-0-s00');
    const err3 = (await kubelet.allocate([]).catch((e: ServiceError) => e)) as ServiceError;
    expect(err3.code).toBe(status.INVALID_ARGUMENT);
    const ok = await kubelet.allocate([['gpu-0000-65-00-0-s03']]);
    expect(ok.container_responses[0]!.envs.EMUV_GPU).toBe('GPU-0a1b2c3d-0000-4000-8000-000000000065');
  });

  it('10,000 unknown IDs, or one ID of a megabyte: INVALID_ARGUMENT with a bounded message, and it keeps serving', async () => {
    await startOn('one-gpu', ['--gpu-memory=0000:01:00.0=8Gi']);
    const many = Array.from({ length: 10_000 }, (_, i) => `gpu-0000-99-00-0-s${i}`);
    const err = (await kubelet.allocate([many]).catch((e: ServiceError) => e)) as ServiceError;
    // Echoing every ID made a 200 KB status trailer, which HTTP/2 resets ("Protocol error", code INTERNAL).
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toBe(`10000 unknown device IDs: ${many.slice(0, 8).join(', ')} and 9992 more`);
    const huge = 'x'.repeat(1 << 20);
    const err2 = (await kubelet.allocate([[huge]]).catch((e: ServiceError) => e)) as ServiceError;
    expect(err2.code).toBe(status.INVALID_ARGUMENT);
    expect(err2.details).toBe(`1 unknown device ID: ${'x'.repeat(80)}… (1048576 characters)`);
    expect((await kubelet.allocate([['gpu-0000-01-00-0-s01']])).container_responses).toHaveLength(1);
  });

  it('answers a garbage request body with an error and keeps serving', async () => {
    const { dpDir } = await startOn('one-gpu', ['--gpu-memory=0000:01:00.0=8Gi']);
    const raw = new Client(`unix://${join(dpDir, 'emuv-vgpu.sock')}`, credentials.createInsecure());
    const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]);
    const err = await new Promise<ServiceError>((resolve) =>
      raw.makeUnaryRequest(
        '/v1beta1.DevicePlugin/Allocate',
        (b: Buffer) => b,
        (b: Buffer) => b,
        garbage,
        (e) => resolve(e!),
      ),
    );
    raw.close();
    expect(err.code).not.toBe(status.OK);
    const ok = await kubelet.allocate([['gpu-0000-01-00-0-s01']]);
    expect(ok.container_responses).toHaveLength(1);
  });
});

describe('kubelet restart', () => {
  it('re-registers after the directory is wiped and kubelet.sock recreated, and allocates on the new connection', async () => {
    await startOn('one-gpu', ['--gpu-memory=0000:01:00.0=8Gi']);
    expect(kubelet.registrations).toHaveLength(1);
    await kubelet.restart();
    // Liveness, not speed: bench/deviceplugin.ts measures restart-to-re-registered.
    await kubelet.waitFor(() => kubelet.registrations.length === 2 && kubelet.devices.length === 16, 10_000, 're-registration');
    expect(kubelet.registrations[0]!.streamEnded).toBe(true);
    expect(agent!.lifecycle.registered).toBe(true);
    const res = await kubelet.allocate([['gpu-0000-01-00-0-s05']]);
    expect(res.container_responses[0]!.mounts.at(-1)!.host_path).toBe(join(tmp.path, 'state', 'gpu-0000-01-00-0-s05'));
  });

  it('re-registers when only its own socket is removed', async () => {
    const { dpDir } = await startOn('one-gpu', ['--gpu-memory=0000:01:00.0=8Gi']);
    rmSync(join(dpDir, 'emuv-vgpu.sock'));
    await kubelet.waitFor(() => kubelet.registrations.length === 2, 10_000, 're-registration after socket removal');
    expect(statSync(join(dpDir, 'emuv-vgpu.sock')).isSocket()).toBe(true);
  });
});

describe('metrics endpoint', () => {
  it('serves /metrics, /healthz and /readyz once registered', async () => {
    await startOn('one-gpu', ['--gpu-memory=0000:01:00.0=8Gi']);
    await kubelet.allocate([['gpu-0000-01-00-0-s00']]);
    const base = `http://127.0.0.1:${agent!.metricsPort}`;
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('emuv_allocations_total{outcome="ok"} 1');
    expect(metrics).toContain(`emuv_node_vram_virtual_bytes ${8 * 1024 ** 3 - 512 * 1024 ** 2 + 16 * 1024 ** 3}`);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });
});

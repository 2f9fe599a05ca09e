/**
 * Per-container usage through the agent: the stats file a container's processes write (here the
 * golden file the C tests produce), named through the kubelet's PodResources API, served on /status
 * and /metrics; directories of pods that are gone are cleaned.
 */
import { copyFileSync, existsSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nopLogger } from '../../common/log.ts';
import { startAgent, type AgentHandle } from '../../plugin/agent/agent.ts';
import { parsePluginConfig } from '../../plugin/config.ts';
import type { StatusDocument } from '../../plugin/usage/status.ts';
import { StandInKubelet } from '../../localcluster/stand-in-kubelet.ts';
import { copyNodeFixture, REPO_ROOT, runEmuv, tempDir } from '../../localcluster/repo.ts';
import { agentFlags } from '../helpers.ts';

const GOLDEN = join(REPO_ROOT, 'test', 'fixtures', 'stats', 'golden-v1.bin');
const Mi = 2 ** 20;
const Gi = 2 ** 30;
let tmp: ReturnType<typeof tempDir>;
let kubelet: StandInKubelet;
let agent: AgentHandle;

beforeEach(async () => {
  tmp = tempDir();
  const roots = copyNodeFixture('one-gpu', join(tmp.path, 'node'));
  const dp = join(tmp.path, 'dp');
  mkdirSync(dp);
  kubelet = new StandInKubelet(dp);
  await kubelet.start();
  await kubelet.servePodResources(join(tmp.path, 'pod-resources.sock'));
  const cfg = parsePluginConfig(
    agentFlags(
      roots,
      tmp.path,
      dp,
      `--pod-resources-socket=${join(tmp.path, 'pod-resources.sock')}`,
      '--gpu-memory=0000:01:00.0=8Gi',
      '--metrics-addr=127.0.0.1:0',
    ),
    {},
  );
  agent = await startAgent(cfg, { logger: nopLogger, nvml: null, usageIntervalMs: 60_000 });
  await kubelet.waitFor(() => kubelet.devices.length === 16, 5000, 'registration');
});

afterEach(async () => {
  await agent.stop();
  await kubelet.stop();
  tmp.cleanup();
});

describe('per-container usage', () => {
  it('names each stats file by its pod and container and serves it on /status and /metrics', async () => {
    const res = await kubelet.allocate([['gpu-0000-01-00-0-s04']]);
    const statsDir = res.container_responses[0]!.mounts.find((m) => m.container_path === '/run/emuv')!.host_path;
    copyFileSync(GOLDEN, join(statsDir, 'stats.bin')); // what the interposer in the container writes
    kubelet.podResources = [
      {
        name: 'llm-0',
        namespace: 'team-a',
        containers: [
          { name: 'server', devices: [{ resource_name: 'emuv.io/vgpu', device_ids: ['gpu-0000-01-00-0-s04'], topology: null }] },
        ],
      },
    ];
    const status = await agent.refreshStatus();
    // What native/tests/test_golden.c wrote into the golden file, derived here by hand (not by the reader
    // under test): share 7680 MiB, limit 28 GiB; process 101 holds a 6 GiB VRAM + 2 GiB host split block
    // and 512 MiB of VRAM, process 202 holds 512 MiB (its 256 MiB block was freed after the peak);
    // one spill, one OOM, one denied retry. The test node's --proc-root (a fixture) lists no process:
    // whether the file's two processes run cannot be told, so they count as running, unverified.
    const expected = {
      allocId: 'gpu-0000-01-00-0-s04',
      owner: { namespace: 'team-a', pod: 'llm-0', container: 'server' },
      gpu: 'GPU-5a3c1e0e-7f6b-4c1a-9d2e-0123456789ab',
      limitBytes: 28 * Gi,
      vramShareBytes: 7680 * Mi,
      vramUsedBytes: 6 * Gi + 512 * Mi + 512 * Mi, // 7168 MiB
      hostUsedBytes: 2 * Gi,
      vramPeakBytes: 6 * Gi + 512 * Mi + 512 * Mi + 256 * Mi, // 7424 MiB, before the 256 MiB free
      hostPeakBytes: 2 * Gi,
      spillEvents: 1,
      oomEvents: 1,
      deniedRetries: 1,
      processes: 2,
      processesUnverified: 2,
      exitedProcesses: 0,
      exitedHeldBytes: 0,
      error: null,
    };
    expect(status.containers).toEqual([expected]);

    const base = `http://127.0.0.1:${agent.metricsPort}`;
    const served = (await (await fetch(`${base}/status`)).json()) as StatusDocument;
    expect(served.apiVersion).toBe('emuv.io/status/v1');
    expect(served.containers[0]?.owner).toEqual({ namespace: 'team-a', pod: 'llm-0', container: 'server' });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const labels = `namespace="team-a",pod="llm-0",container="server",gpu="${expected.gpu}"`;
    expect(metrics).toContain(`emuv_container_host_spill_bytes{${labels}} ${expected.hostUsedBytes}`);
    expect(metrics).toContain(`emuv_container_vram_used_bytes{${labels}} ${expected.vramUsedBytes}`);
    expect(metrics).toContain(`emuv_container_limit_bytes{${labels}} ${expected.limitBytes}`);
    expect(metrics).toContain(`emuv_container_spill_events_total{${labels}} ${expected.spillEvents}`);
  });

  it('emuv top --once and emuv status show it, from the agent or from the stats files', async () => {
    const res = await kubelet.allocate([['gpu-0000-01-00-0-s03']]);
    copyFileSync(GOLDEN, join(res.container_responses[0]!.mounts.at(-1)!.host_path, 'stats.bin'));
    kubelet.podResources = [
      {
        name: 'llm-1',
        namespace: 'ml',
        containers: [{ name: 'main', devices: [{ resource_name: 'emuv.io/vgpu', device_ids: ['gpu-0000-01-00-0-s03'], topology: null }] }],
      },
    ];
    await agent.refreshStatus();
    const top = await runEmuv(['top', '--once', `--url=http://127.0.0.1:${agent.metricsPort}`]);
    expect(top.stderr).toBe('');
    expect(top.stdout).toContain('GPU 0000:01:00.0 NVIDIA GeForce RTX 4060 healthy');
    expect(top.stdout).toMatch(/ml\/llm-1\/main +\d+\.\dG/);
    const fromFiles = await runEmuv([
      'top',
      '--once',
      `--state-dir=${join(tmp.path, 'state')}`,
      `--pod-resources-socket=${join(tmp.path, 'pod-resources.sock')}`,
    ]);
    expect(fromFiles.stdout).toMatch(/ml\/llm-1\/main +\d+\.\dG/);
    const status = JSON.parse((await runEmuv(['status', `--url=http://127.0.0.1:${agent.metricsPort}`])).stdout) as StatusDocument;
    expect(status.containers[0]?.owner?.pod).toBe('llm-1');
    const bad = await runEmuv(['top', '--once', '--url=http://127.0.0.1:1']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('emuv:');
  });

  it('counts only processes that still run: a killed one is reported as exited, with what it still holds', async () => {
    const res = await kubelet.allocate([['gpu-0000-01-00-0-s09']]);
    const statsDir = res.container_responses[0]!.mounts.find((m) => m.container_path === '/run/emuv')!.host_path;
    expect((await agent.refreshStatus()).containers).toEqual([]); // the empty file Allocate made: no process yet
    copyFileSync(GOLDEN, join(statsDir, 'stats.bin'));
    // The host's /proc (--proc-root): the golden file's pid 101 (start time 5000) runs as host pid 4242 in
    // the container's pid namespace; its pid 202 does not run any more (killed: its slot is still LIVE).
    const proc = join(tmp.path, 'node', 'proc', '4242');
    mkdirSync(proc);
    writeFileSync(join(proc, 'stat'), `4242 (python3 (worker)) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 5000 1 1\n`);
    writeFileSync(join(proc, 'status'), 'Name:\tpython3\nNSpid:\t4242\t101\n');
    const c = (await agent.refreshStatus()).containers[0]!;
    expect(c).toMatchObject({ processes: 1, processesUnverified: 0, exitedProcesses: 1, exitedHeldBytes: 512 * 2 ** 20 });
    const metrics = await (await fetch(`http://127.0.0.1:${agent.metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/emuv_container_processes\{[^}]*\} 1\n/);
    expect(metrics).toMatch(/emuv_container_exited_processes\{[^}]*\} 1\n/);
    // The process exits: its host pid disappears (another process keeps the fixture's /proc a process table).
    mkdirSync(join(tmp.path, 'node', 'proc', '1'));
    writeFileSync(join(tmp.path, 'node', 'proc', '1', 'stat'), '1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n');
    rmSync(proc, { recursive: true });
    expect((await agent.refreshStatus()).containers[0]).toMatchObject({ processes: 0, exitedProcesses: 2 });
  });

  it('reports a broken stats file for that container alone', async () => {
    await kubelet.allocate([['gpu-0000-01-00-0-s01']]);
    await kubelet.allocate([['gpu-0000-01-00-0-s02']]);
    writeFileSync(join(tmp.path, 'state', 'gpu-0000-01-00-0-s01', 'stats.bin'), 'not a stats file');
    copyFileSync(GOLDEN, join(tmp.path, 'state', 'gpu-0000-01-00-0-s02', 'stats.bin'));
    const status = await agent.refreshStatus();
    expect(status.containers.map((c) => [c.allocId, c.error])).toEqual([
      ['gpu-0000-01-00-0-s01', 'stats file too short: 16 bytes'],
      ['gpu-0000-01-00-0-s02', null],
    ]);
    const metrics = await (await fetch(`http://127.0.0.1:${agent.metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/emuv_stats_read_errors_total [1-9]/);
  });

  it('removes stats directories of pods that are gone, and keeps fresh or owned ones', async () => {
    for (const s of ['s05', 's06', 's07']) await kubelet.allocate([[`gpu-0000-01-00-0-${s}`]]);
    const old = (Date.now() - 3600_000) / 1000;
    utimesSync(join(tmp.path, 'state', 'gpu-0000-01-00-0-s05'), old, old); // gone long ago
    utimesSync(join(tmp.path, 'state', 'gpu-0000-01-00-0-s06'), old, old); // old but still owned
    kubelet.podResources = [
      {
        name: 'p',
        namespace: 'n',
        containers: [{ name: 'c', devices: [{ resource_name: 'emuv.io/vgpu', device_ids: ['gpu-0000-01-00-0-s06'], topology: null }] }],
      },
    ];
    await agent.refreshStatus();
    expect(existsSync(join(tmp.path, 'state', 'gpu-0000-01-00-0-s05'))).toBe(false);
    expect(existsSync(join(tmp.path, 'state', 'gpu-0000-01-00-0-s06'))).toBe(true);
    expect(existsSync(join(tmp.path, 'state', 'gpu-0000-01-00-0-s07'))).toBe(true); // just allocated
  });

  it('cleans nothing while PodResources cannot be asked', async () => {
    await kubelet.allocate([['gpu-0000-01-00-0-s08']]);
    const old = (Date.now() - 3600_000) / 1000;
    utimesSync(join(tmp.path, 'state', 'gpu-0000-01-00-0-s08'), old, old);
    await kubelet.stop(); // PodResources gone too
    const status = await agent.refreshStatus();
    expect(existsSync(join(tmp.path, 'state', 'gpu-0000-01-00-0-s08'))).toBe(true);
    expect(status.containers).toEqual([]); // allocated, but no CUDA process wrote stats yet
  });
});

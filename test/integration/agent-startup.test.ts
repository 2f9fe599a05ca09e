/**
 * The agent's start-up and loops when the world is not as expected, in-process against a stand-in kubelet:
 * a start-up step that fails stops everything started before it; a missing device-plugin directory and a
 * missing kubelet.sock are said in words; a VRAM reserve larger than the card says why nothing is offered;
 * a PodResources call that stalls does not pile up usage passes.
 */
import { createServer, type Server } from 'node:net';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StartupError } from '../../common/errors.ts';
import { memoryLogger, nopLogger } from '../../common/log.ts';
import { startAgent, type AgentHandle } from '../../plugin/agent/agent.ts';
import type { NodeApi } from '../../plugin/agent/node-status.ts';
import { parsePluginConfig } from '../../plugin/config.ts';
import type { PodResourcesSource } from '../../plugin/usage/pod-resources.ts';
import { StandInKubelet } from '../../localcluster/stand-in-kubelet.ts';
import { copyNodeFixture, tempDir } from '../../localcluster/repo.ts';
import { agentFlags, waitUntil } from '../helpers.ts';

let tmp: ReturnType<typeof tempDir>;
let kubelet: StandInKubelet | null;
let agent: AgentHandle | null;
let busy: Server | null;

beforeEach(() => {
  tmp = tempDir();
  kubelet = null;
  agent = null;
  busy = null;
});

afterEach(async () => {
  await agent?.stop();
  await kubelet?.stop();
  await new Promise<void>((r) => (busy ? busy.close(() => r()) : r()));
  tmp.cleanup();
});

function setup(...extra: string[]) {
  const roots = copyNodeFixture('one-gpu', join(tmp.path, 'node'));
  const dp = join(tmp.path, 'dp');
  mkdirSync(dp, { recursive: true });
  const config = parsePluginConfig(agentFlags(roots, tmp.path, dp, '--gpu-memory=0000:01:00.0=8Gi', ...extra), {});
  return { roots, dp, config };
}

async function busyPort(): Promise<number> {
  const server = createServer();
  busy = server;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as { port: number }).port;
}

const okNodeApi: NodeApi = {
  getNode: () => Promise.resolve({}),
  patchNodeStatus: () => Promise.resolve(),
  patchNode: () => Promise.resolve(),
};

describe('a start-up step that fails', () => {
  it('a busy metrics port: a StartupError naming --metrics-addr, before the kubelet has heard of the plugin', async () => {
    const { dp, config } = setup(`--metrics-addr=127.0.0.1:${await busyPort()}`);
    kubelet = new StandInKubelet(dp);
    await kubelet.start();
    const err = await startAgent(config, { logger: nopLogger, nvml: null }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartupError);
    expect((err as StartupError).flag).toBe('metrics-addr');
    expect((err as Error).message).toBe(
      `--metrics-addr 127.0.0.1:${config.metrics!.port}: cannot listen: address already in use (EADDRINUSE)`,
    );
    expect(existsSync(join(dp, 'emuv-vgpu.sock'))).toBe(false);
    expect(kubelet.registrations).toHaveLength(0);
  });

  it('a step after the device plugin started: the plugin is stopped and its socket removed', async () => {
    // --owner-daemonset with node status on, but no API for it: the last start-up step throws.
    const { dp, config } = setup('--node-status=on', '--node-name=node-a', '--owner-daemonset=emuv-system/emuv-agent');
    kubelet = new StandInKubelet(dp);
    await kubelet.start();
    const err = await startAgent(config, { logger: nopLogger, nvml: null, nodeApi: okNodeApi }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('--owner-daemonset is set but no Kubernetes API for it was given');
    expect(existsSync(join(dp, 'emuv-vgpu.sock'))).toBe(false);
    // The stream the kubelet had opened is over: nothing is left serving emuv.io/vgpu.
    await kubelet.waitFor(() => kubelet!.registrations.every((r) => r.streamEnded), 5000, 'the ListAndWatch stream to end');
  });

  it('a missing device-plugin directory is named, with the flag, instead of a bind error', async () => {
    const { config } = setup(`--device-plugin-dir=${join(tmp.path, 'no-such-dir')}`);
    const err = await startAgent(config, { logger: nopLogger, nvml: null }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartupError);
    expect((err as Error).message).toBe(
      `--device-plugin-dir ${join(tmp.path, 'no-such-dir')}: no such directory; ` +
        "it must be the kubelet's device-plugin directory (/var/lib/kubelet/device-plugins on the host)",
    );
  });
});

describe('what the agent says while it cannot do its job', () => {
  it('no kubelet.sock: says once that it waits for the kubelet, then registers when it appears', async () => {
    const { dp, config } = setup();
    const logger = memoryLogger();
    agent = await startAgent(config, { logger, nvml: null });
    const waiting = () => logger.entries.filter((e) => e.msg.startsWith('waiting for the kubelet'));
    await waitUntil(() => waiting().length > 0, 5000, 'the waiting message');
    // Retries go on every 500 ms; after a few of them it has still said it once.
    await new Promise((r) => setTimeout(r, 1200));
    expect(waiting()).toHaveLength(1);
    expect(waiting()[0]!.fields).toMatchObject({ kubelet: join(dp, 'kubelet.sock'), resource: 'emuv.io/vgpu' });
    kubelet = new StandInKubelet(dp);
    await kubelet.start();
    await kubelet.waitFor(() => kubelet!.devices.length === 16, 5000, 'registration');
  });

  it('a VRAM reserve larger than the card: capacity 0, and the log says why', async () => {
    const { dp, config } = setup('--vram-reserve=10Gi');
    kubelet = new StandInKubelet(dp);
    await kubelet.start();
    const logger = memoryLogger();
    agent = await startAgent(config, { logger, nvml: null });
    expect(agent.state.inventory.vramVirtualBytes).toBe(0);
    expect(logger.entries).toContainEqual({
      level: 'warn',
      msg: 'gpu not offered',
      fields: {
        gpu: '0000:01:00.0',
        reason: 'VRAM (8 GiB) is not larger than the VRAM reserve (10 GiB): nothing is left to offer (--vram-reserve)',
      },
    });
  });
});

describe('usage refresh', () => {
  it('a PodResources call that stalls holds one pass: refreshes wait for it instead of piling up', async () => {
    const { dp, config } = setup('--metrics-addr=off');
    kubelet = new StandInKubelet(dp);
    await kubelet.start();
    let calls = 0;
    let release: () => void = () => {};
    const stalled = new Promise<void>((r) => (release = r));
    const podResources: PodResourcesSource = {
      list: async () => {
        calls++;
        if (calls > 1) await stalled; // the first pass (at start-up) answers; every later call stalls
        return [];
      },
      close: () => {},
    };
    agent = await startAgent(config, { logger: nopLogger, nvml: null, podResources, usageIntervalMs: 5 });
    await waitUntil(() => calls === 2, 5000, 'the timer to start the second pass');
    // Five more refreshes asked for, and some hundred intervals of the timer: all wait on the stalled pass.
    const asked = Array.from({ length: 5 }, () => agent!.refreshStatus());
    await new Promise((r) => setTimeout(r, 500));
    expect(calls).toBe(2);
    release();
    const docs = await Promise.all(asked);
    expect(docs.every((d) => d.apiVersion === 'emuv.io/status/v1')).toBe(true);
  });
});

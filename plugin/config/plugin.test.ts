import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/errors.ts';
import { markdownFlags, usage } from '../../common/flags.ts';
import { DEFAULT_CAPACITY_CONFIG } from '../inventory/capacity.ts';
import { parseOwnerDaemonSet, parsePluginConfig, PLUGIN_COMMAND } from './plugin.ts';

const GiB = 1024 ** 3;

describe('emuv plugin configuration', () => {
  it('takes the DRA settings and refuses combinations that cannot work', () => {
    const c = parsePluginConfig(['--node-name=n1', '--dra=on', '--allocation=DRA', '--cdi-dir=/x/cdi'], {
      EMUV_AGENT_KUBELET_PLUGINS_DIR: '/k/p',
    });
    expect(c.dra).toEqual({
      enabled: true,
      allocation: 'DRA',
      cdiDir: '/x/cdi',
      kubeletPluginsDir: '/k/p',
      kubeletRegistryDir: '/var/lib/kubelet/plugins_registry',
    });
    expect(() => parsePluginConfig(['--node-name=n1', '--allocation=DRA'], {})).toThrow('--allocation=DRA needs --dra=on');
    expect(() => parsePluginConfig(['--node-status=off', '--dra=on'], {})).toThrow('--dra=on needs --node-status=on');
    expect(() => parsePluginConfig(['--node-name=n1', '--dra=on', '--allocation=dra'], {})).toThrow(/allocation/);
  });

  it('has production defaults', () => {
    const c = parsePluginConfig(['--node-name=n1'], {});
    expect(c).toMatchObject({
      sysRoot: '/sys',
      procRoot: '/proc',
      devRoot: '/dev',
      hostDevDir: '/dev',
      devicePluginDir: '/var/lib/kubelet/device-plugins',
      stateDir: '/run/emuv',
      interposerDir: '/usr/local/emuv',
      interposerSource: null,
      driverLibDir: '/usr/lib/x86_64-linux-gnu',
      nodeName: 'n1',
      nodeStatus: true,
      kubeconfig: null,
      metrics: { host: '0.0.0.0', port: 9402 },
      podResourcesSocket: '/var/lib/kubelet/pod-resources/kubelet.sock',
      ownerDaemonSet: null,
      nvmlLibrary: 'libnvidia-ml.so.1',
      logLevel: 'info',
      dra: {
        enabled: false,
        allocation: 'DevicePlugin',
        cdiDir: '/var/run/cdi',
        kubeletPluginsDir: '/var/lib/kubelet/plugins',
        kubeletRegistryDir: '/var/lib/kubelet/plugins_registry',
      },
    });
    expect(c.gpuMemory.size).toBe(0);
    expect(c.capacity).toEqual({ ...DEFAULT_CAPACITY_CONFIG });
    expect(c.capacity).toEqual({
      slotsPerGpu: 16,
      reserveBytes: 512 * 1024 ** 2,
      hostBudget: { kind: 'auto' },
      vramMode: 'fill',
      spillBackend: 'auto',
    });
  });

  it('reads EMUV_AGENT_* equivalents; a flag wins over the environment', () => {
    const env = {
      EMUV_AGENT_SYS_ROOT: '/host/sys',
      EMUV_AGENT_SLOTS_PER_GPU: '8',
      EMUV_AGENT_GPU_MEMORY: '0000:01:00.0=8Gi, 0000:02:00.0=16Gi',
      EMUV_AGENT_HOST_SPILL: 'Auto',
      EMUV_AGENT_SPILL_BACKEND: 'pinned',
      NODE_NAME: 'from-downward-api',
    };
    const c = parsePluginConfig(['--slots-per-gpu=4'], env);
    expect(c.sysRoot).toBe('/host/sys');
    expect(c.capacity.slotsPerGpu).toBe(4);
    expect(c.capacity.hostBudget).toEqual({ kind: 'auto' });
    expect(c.capacity.spillBackend).toBe('pinned');
    expect(c.nodeName).toBe('from-downward-api');
    expect([...c.gpuMemory]).toEqual([
      ['0000:01:00.0', 8 * GiB],
      ['0000:02:00.0', 16 * GiB],
    ]);
    expect(parsePluginConfig([], { ...env, EMUV_AGENT_NODE_NAME: 'own' }).nodeName).toBe('own');
  });

  it('the interposer contract’s EMUV_* variables are not the agent’s: EMUV_VRAM_MODE and EMUV_LOG_LEVEL change nothing', () => {
    const c = parsePluginConfig(['--node-name=n'], { EMUV_VRAM_MODE: 'fixed', EMUV_LOG_LEVEL: 'debug', EMUV_SLOTS_PER_GPU: '2' });
    expect(c).toMatchObject({ logLevel: 'info', capacity: { vramMode: 'fill', slotsPerGpu: 16 } });
  });

  it('kubeconfig: --kubeconfig, then EMUV_AGENT_KUBECONFIG, then KUBECONFIG, else in-cluster', () => {
    const env = { NODE_NAME: 'n', EMUV_AGENT_KUBECONFIG: '/own', KUBECONFIG: '/kubectl' };
    expect(parsePluginConfig(['--kubeconfig=/flag'], env).kubeconfig).toEqual({ path: '/flag', from: '--kubeconfig' });
    expect(parsePluginConfig([], env).kubeconfig).toEqual({ path: '/own', from: 'EMUV_AGENT_KUBECONFIG' });
    expect(parsePluginConfig([], { NODE_NAME: 'n', KUBECONFIG: '/kubectl' }).kubeconfig).toEqual({ path: '/kubectl', from: 'KUBECONFIG' });
  });

  it('runs standalone without a node name when node status is off', () => {
    expect(parsePluginConfig(['--node-status=off', '--metrics-addr=off'], {})).toMatchObject({ nodeStatus: false, metrics: null });
    expect(parsePluginConfig(['--node-status', 'false'], {})).toMatchObject({ nodeStatus: false });
    expect(parsePluginConfig([], { EMUV_AGENT_NODE_STATUS: 'off' })).toMatchObject({ nodeStatus: false });
  });

  it.each([
    [['--node-status=maybe', '--node-name=x'], '--node-status maybe: expected on or off (or true, false)'],
    [[], '--node-name (or EMUV_AGENT_NODE_NAME, or NODE_NAME) is required unless --node-status=off'],
    [['--node-name=x', '--slots-per-gpu=0'], '--slots-per-gpu 0: expected an integer from 1 to 128'],
    [['--node-name=x', '--slots-per-gpu=1.5'], '--slots-per-gpu 1.5: expected an integer from 1 to 128'],
    [['--node-name=x', '--vram-mode=burst'], '--vram-mode burst: expected fill or fixed'],
    [['--node-name=x', '--spill-backend=vmm'], '--spill-backend vmm: expected auto, pinned or managed'],
    [['--node-name=x', '--vram-reserve=1.5Gi'], '--vram-reserve 1.5Gi: expected bytes or an integer with Ki, Mi, Gi or Ti'],
    [['--node-name=x', '--host-spill=95%'], '--host-spill 95%: a percent may be at most 90% of node memory'],
    [
      ['--node-name=x', '--host-spill=AUTO'],
      '--host-spill AUTO: expected auto, a size (e.g. 64Gi) or a percent of node memory from 0% to 90%',
    ],
    [['--node-name=x', '--metrics-addr=nowhere'], '--metrics-addr nowhere: expected [host]:port or off'],
    [['--node-name=x', '--log-level=loud'], '--log-level loud: expected debug, info, warn or error'],
    [['--node-name=x', '--frobnicate'], '--frobnicate: unknown flag of emuv plugin'],
    [['--node-name=x', '--gpu-memory=01:00.0=8Gi'], '--gpu-memory 01:00.0=8Gi: expected <pci-address>=<size>, e.g. 0000:01:00.0=8Gi'],
    [['--node-name=x', '--gpu-memory=0000:01:00.0=0'], '--gpu-memory 0000:01:00.0=0: the size must be above 0'],
    [['--node-name=x', '--gpu-memory=0000:0A:00.0=8Gi', '--gpu-memory=0000:0a:00.0=16Gi'], '--gpu-memory: 0000:0a:00.0 given twice'],
  ])('%j is refused with a message naming the flag', (argv, message) => {
    expect(() => parsePluginConfig(argv, {})).toThrow(ConfigError);
    expect(() => parsePluginConfig(argv, {})).toThrow(message);
  });

  it('refuses a malformed environment value with the variable name', () => {
    expect(() => parsePluginConfig(['--node-name=x'], { EMUV_AGENT_VRAM_RESERVE: '-1' })).toThrow(
      'EMUV_AGENT_VRAM_RESERVE=-1: expected bytes or an integer with Ki, Mi, Gi or Ti',
    );
    expect(() => parsePluginConfig(['--node-name=x'], { EMUV_AGENT_GPU_MEMORY: '0000:01:00.0=8Gi,bad' })).toThrow(
      'EMUV_AGENT_GPU_MEMORY entry bad: expected <pci-address>=<size>',
    );
  });

  it('takes --owner-daemonset as <namespace>/<name>, from EMUV_AGENT_OWNER_DAEMONSET too; empty is off', () => {
    expect(parsePluginConfig(['--node-name=x'], {}).ownerDaemonSet).toBeNull();
    expect(parsePluginConfig(['--node-name=x'], { EMUV_AGENT_OWNER_DAEMONSET: 'emuv-system/emuv-agent' }).ownerDaemonSet).toEqual({
      namespace: 'emuv-system',
      name: 'emuv-agent',
    });
    expect(
      parsePluginConfig(['--node-name=x', '--owner-daemonset=gpu/emuv.agent-1'], { EMUV_AGENT_OWNER_DAEMONSET: 'a/b' }).ownerDaemonSet,
    ).toEqual({ namespace: 'gpu', name: 'emuv.agent-1' });
  });

  it.each([
    'emuv-agent',
    'emuv-system/',
    '/emuv-agent',
    'a/b/c',
    'Emuv-System/emuv-agent',
    'emuv-system/emuv_agent',
    'ns/-x',
    `${'n'.repeat(64)}/x`,
    ' a/b',
  ])('--owner-daemonset %j is refused at start', (text) => {
    expect(() => parsePluginConfig(['--node-name=x', `--owner-daemonset=${text}`], {})).toThrow(ConfigError);
    expect(() => parsePluginConfig(['--node-name=x', `--owner-daemonset=${text}`], {})).toThrow(
      ': expected <namespace>/<name> (lowercase DNS names), e.g. emuv-system/emuv-agent',
    );
    expect(() => parseOwnerDaemonSet(text)).toThrow('expected <namespace>/<name>');
  });

  it('usage lists every flag with its variable', () => {
    const text = usage(PLUGIN_COMMAND);
    for (const flag of Object.keys(PLUGIN_COMMAND.flags)) expect(text).toContain(`--${flag} `);
    expect(text).toContain('[EMUV_AGENT_STATE_DIR]');
    expect(text).toContain('[EMUV_AGENT_NODE_NAME, then NODE_NAME]');
  });
});

describe('docs/agent.md', () => {
  it('holds the flag table generated from emuv plugin’s flags', () => {
    const doc = readFileSync(new URL('../../docs/agent.md', import.meta.url), 'utf8');
    expect(doc).toContain(markdownFlags(PLUGIN_COMMAND));
  });
});

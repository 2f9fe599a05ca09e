import { describe, expect, it } from 'vitest';
import { ConfigError } from '../common/errors.ts';
import { envName, parseDiscoverConfig, parseGpuMemory, parseHostSpill, parseOwnerDaemonSet, parsePluginConfig, usage } from './config.ts';

const GiB = 1024 ** 3;

describe('emuv plugin configuration', () => {
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
      nodeName: 'n1',
      nodeStatus: true,
      kubeconfig: null,
      metrics: { host: '0.0.0.0', port: 9402 },
      nvmlLibrary: 'libnvidia-ml.so.1',
      logLevel: 'info',
    });
    expect(c.capacity).toEqual({ slotsPerGpu: 16, reserveBytes: 512 * 1024 ** 2, hostBudget: { kind: 'auto' }, vramMode: 'fill' });
  });

  it('reads EMUV_* equivalents; a flag wins over the environment', () => {
    const env = {
      EMUV_SYS_ROOT: '/host/sys',
      EMUV_SLOTS_PER_GPU: '8',
      EMUV_GPU_MEMORY: '0000:01:00.0=8Gi, 0000:02:00.0=16Gi',
      NODE_NAME: 'from-downward-api',
    };
    const c = parsePluginConfig(['--slots-per-gpu=4'], env);
    expect(c.sysRoot).toBe('/host/sys');
    expect(c.capacity.slotsPerGpu).toBe(4);
    expect(c.nodeName).toBe('from-downward-api');
    expect([...c.gpuMemory]).toEqual([
      ['0000:01:00.0', 8 * GiB],
      ['0000:02:00.0', 16 * GiB],
    ]);
    expect(envName('device-plugin-dir')).toBe('EMUV_DEVICE_PLUGIN_DIR');
  });

  it('runs standalone without a node name when node status is off', () => {
    expect(parsePluginConfig(['--node-status=off', '--metrics-addr=off'], {})).toMatchObject({ nodeStatus: false, metrics: null });
  });

  it.each([
    [['--node-status=maybe', '--node-name=x'], '--node-status maybe: expected on or off'],
    [[], '--node-name (or NODE_NAME) is required unless --node-status=off'],
    [['--node-name=x', '--slots-per-gpu=0'], '--slots-per-gpu 0: expected an integer from 1 to 128'],
    [['--node-name=x', '--slots-per-gpu=1.5'], '--slots-per-gpu 1.5'],
    [['--node-name=x', '--vram-mode=burst'], '--vram-mode burst: expected fill or fixed'],
    [['--node-name=x', '--vram-reserve=1.5Gi'], '--vram-reserve: invalid size "1.5Gi"'],
    [['--node-name=x', '--host-spill=150%'], '--host-spill 150%: a percent must be from 0% to 100%'],
    [['--node-name=x', '--metrics-addr=nowhere'], '--metrics-addr nowhere: expected [host]:port or off'],
    [['--node-name=x', '--log-level=loud'], '--log-level loud'],
    [['--node-name=x', '--frobnicate'], "Unknown option '--frobnicate'"],
    [['--node-name=x', '--gpu-memory=01:00.0=8Gi'], '--gpu-memory "01:00.0=8Gi": expected <pci-address>=<size>'],
  ])('%j is refused with a message naming the flag', (argv, message) => {
    expect(() => parsePluginConfig(argv, {})).toThrow(ConfigError);
    expect(() => parsePluginConfig(argv, {})).toThrow(message);
  });

  it('refuses a malformed environment value with the variable name', () => {
    expect(() => parseDiscoverConfig([], { EMUV_JSON: 'yes' })).toThrow('EMUV_JSON="yes": expected true or false');
    expect(() => parsePluginConfig(['--node-name=x'], { EMUV_VRAM_RESERVE: '-1' })).toThrow('--vram-reserve: invalid size "-1"');
  });

  it('parses --gpu-memory and --host-spill forms', () => {
    expect(parseGpuMemory(['0000:0A:00.0=24Gi']).get('0000:0a:00.0')).toBe(24 * GiB);
    expect(() => parseGpuMemory(['0000:01:00.0=8Gi', '0000:01:00.0=16Gi'])).toThrow('given twice');
    expect(() => parseGpuMemory(['0000:01:00.0=0'])).toThrow('size must be above 0');
    expect(parseHostSpill('auto')).toEqual({ kind: 'auto' });
    expect(parseHostSpill('40%')).toEqual({ kind: 'percent', percent: 40 });
    expect(parseHostSpill('64Gi')).toEqual({ kind: 'bytes', bytes: 64 * GiB });
  });

  it('takes --owner-daemonset as <namespace>/<name>, from EMUV_OWNER_DAEMONSET too; empty is off', () => {
    expect(parsePluginConfig(['--node-name=x'], {}).ownerDaemonSet).toBeNull();
    expect(parsePluginConfig(['--node-name=x'], { EMUV_OWNER_DAEMONSET: 'emuv-system/emuv-agent' }).ownerDaemonSet).toEqual({
      namespace: 'emuv-system',
      name: 'emuv-agent',
    });
    expect(
      parsePluginConfig(['--node-name=x', '--owner-daemonset=gpu/emuv.agent-1'], { EMUV_OWNER_DAEMONSET: 'a/b' }).ownerDaemonSet,
    ).toEqual({
      namespace: 'gpu',
      name: 'emuv.agent-1',
    });
    expect(parseOwnerDaemonSet('')).toBeNull();
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
    expect(() => parseOwnerDaemonSet(text)).toThrow(
      `--owner-daemonset ${text}: expected <namespace>/<name> (lowercase DNS names), e.g. emuv-system/emuv-agent`,
    );
  });

  it('documents every flag with its environment variable', () => {
    const text = usage('plugin');
    for (const flag of [
      '--sys-root',
      '--device-plugin-dir',
      '--state-dir',
      '--interposer-dir',
      '--node-status',
      '--gpu-memory',
      '--slots-per-gpu',
      '--metrics-addr',
    ])
      expect(text).toContain(flag);
    expect(text).toContain('[EMUV_STATE_DIR]');
  });
});

describe('docs/agent.md', () => {
  it('documents every flag of emuv plugin', async () => {
    const { readFileSync } = await import('node:fs');
    const doc = readFileSync(new URL('../docs/agent.md', import.meta.url), 'utf8');
    const flags = [...usage('plugin').matchAll(/^ {2}(--[a-z-]+)/gm)].map((m) => m[1]!);
    expect(flags.length).toBeGreaterThan(15);
    expect(flags.filter((f) => !doc.includes(`| \`${f}\` |`))).toEqual([]);
  });
});

/**
 * Configuration of the `emuv` commands: flags, with EMUV_* environment equivalents (flag
 * `--sys-root` <-> `EMUV_SYS_ROOT`; a flag wins over the environment). Pure: main.ts passes argv and
 * env in. Every error names the flag and what would be accepted.
 */
import { parseArgs } from 'node:util';
import { parseSize, VRAM_MODES, type VramMode } from '../common/contracts/interposer.ts';
import { ConfigError } from '../common/errors.ts';
import { LOG_LEVELS, type LogLevel } from '../common/log.ts';
import { SORT_KEYS, type SortKey } from './top/render.ts';
import type { DaemonSetRef } from './agent/uninstall.ts';
import { DEFAULT_CAPACITY_CONFIG, MAX_SLOTS_PER_GPU, type CapacityConfig, type HostBudget } from './inventory/capacity.ts';

/** Flags shared by `discover` and `plugin`. */
const COMMON_FLAGS = {
  'sys-root': { type: 'string', default: '/sys', help: 'where the host sysfs is visible' },
  'proc-root': { type: 'string', default: '/proc', help: 'where the host procfs is visible' },
  'dev-root': { type: 'string', default: '/dev', help: 'where the host /dev is visible' },
  'gpu-memory': {
    type: 'string',
    multiple: true,
    help: 'VRAM of a GPU when NVML cannot say: <pci-address>=<size> (repeatable; env: comma-separated)',
  },
  'nvml-library': { type: 'string', default: 'libnvidia-ml.so.1', help: 'NVML library to dlopen, or "off"' },
  'slots-per-gpu': { type: 'string', default: String(DEFAULT_CAPACITY_CONFIG.slotsPerGpu), help: 'emuv.io/vgpu slots per GPU' },
  'vram-reserve': { type: 'string', default: '512Mi', help: 'VRAM kept back per GPU for contexts and the driver' },
  'host-spill': {
    type: 'string',
    default: 'auto',
    help: 'host RAM offered for spill: auto, a size (e.g. 64Gi) or a percent of MemTotal (e.g. 40%)',
  },
  'vram-mode': { type: 'string', default: 'fill', help: 'fill (a container may fill the card) or fixed (VRAM / slots each)' },
  'log-level': { type: 'string', default: 'info', help: 'debug, info, warn or error' },
} as const;

const PLUGIN_FLAGS = {
  ...COMMON_FLAGS,
  'host-dev-dir': { type: 'string', default: '/dev', help: 'the host path of --dev-root, as the kubelet must be told' },
  'device-plugin-dir': { type: 'string', default: '/var/lib/kubelet/device-plugins', help: "the kubelet's device-plugin directory" },
  'state-dir': { type: 'string', default: '/run/emuv', help: 'host directory of per-allocation stats directories' },
  'interposer-dir': { type: 'string', default: '/usr/local/emuv', help: 'host directory the interposer is installed into' },
  'interposer-source': {
    type: 'string',
    default: '',
    help: 'directory holding the built libemuv-*.so to install (default: native/build/lib of this package)',
  },
  'driver-lib-dir': {
    type: 'string',
    default: '/usr/lib/x86_64-linux-gnu',
    help: 'directory of the real libcuda.so.1 inside GPU containers',
  },
  'node-name': { type: 'string', default: '', help: 'this Node (also read from NODE_NAME); required unless --node-status=off' },
  'node-status': { type: 'string', default: 'on', help: 'on: publish emuv.io/vram-virtual in node status; off: no Kubernetes API at all' },
  kubeconfig: { type: 'string', default: '', help: 'kubeconfig file (default: in-cluster configuration)' },
  'metrics-addr': { type: 'string', default: ':9402', help: 'address of /metrics, /healthz, /readyz and /status, or "off"' },
  'pod-resources-socket': {
    type: 'string',
    default: '/var/lib/kubelet/pod-resources/kubelet.sock',
    help: 'the kubelet\'s PodResources socket (names the pod of each stats file), or "off"',
  },
  'owner-daemonset': {
    type: 'string',
    default: '',
    help: '<namespace>/<name> of the DaemonSet running this agent: gone or being deleted at SIGTERM = uninstall, the agent cleans its node (empty: never)',
  },
} as const;

const VIEWER_FLAGS = {
  url: { type: 'string', default: 'http://127.0.0.1:9402', help: "the agent's address (e.g. through kubectl port-forward)" },
  'state-dir': { type: 'string', default: '', help: "read the node's stats files from this directory instead of asking the agent" },
  'pod-resources-socket': { type: 'string', default: '', help: 'with --state-dir: name containers through this PodResources socket' },
  'proc-root': {
    type: 'string',
    default: '/proc',
    help: "with --state-dir: the host's /proc, to tell running CUDA processes from exited ones",
  },
  once: { type: 'boolean', default: false, help: 'top: print one snapshot and exit' },
  sort: { type: 'string', default: 'spill', help: `top: sort containers by ${SORT_KEYS.join(', ')}` },
} as const;

const REMOVE_AGENTS_FLAGS = {
  'owner-daemonset': { type: 'string', default: '', help: '<namespace>/<name> of the agent DaemonSet to remove (required)' },
  kubeconfig: { type: 'string', default: '', help: 'kubeconfig file (default: in-cluster configuration)' },
  timeout: { type: 'string', default: '120', help: 'seconds to wait for every agent to clean its node and exit' },
} as const;

const DISCOVER_FLAGS = { ...COMMON_FLAGS, json: { type: 'boolean', default: false, help: 'print the versioned JSON document' } } as const;

type FlagSpec = Record<string, { type: 'string' | 'boolean'; default?: string | boolean; multiple?: boolean; help: string }>;

export interface CommonConfig {
  sysRoot: string;
  procRoot: string;
  devRoot: string;
  gpuMemory: Map<string, number>;
  nvmlLibrary: string | null;
  capacity: CapacityConfig;
  logLevel: LogLevel;
}

export interface DiscoverConfig extends CommonConfig {
  json: boolean;
}

export interface PluginConfig extends CommonConfig {
  hostDevDir: string;
  devicePluginDir: string;
  stateDir: string;
  interposerDir: string;
  interposerSource: string | null;
  driverLibDir: string;
  nodeName: string;
  nodeStatus: boolean;
  kubeconfig: string | null;
  metrics: { host: string; port: number } | null;
  podResourcesSocket: string | null;
  /** The agent's own DaemonSet, asked about at SIGTERM (uninstall cleanup); null: never asked. */
  ownerDaemonSet: DaemonSetRef | null;
}

export function envName(flag: string): string {
  return `EMUV_${flag.toUpperCase().replace(/-/g, '_')}`;
}

export interface ViewerConfig {
  url: string;
  stateDir: string | null;
  podResourcesSocket: string | null;
  procRoot: string;
  once: boolean;
  sort: SortKey;
}

export function parseViewerConfig(argv: string[], env: Record<string, string | undefined>): ViewerConfig {
  const v = parseFlags(VIEWER_FLAGS, argv, env);
  const sort = v.sort as string;
  if (!(SORT_KEYS as readonly string[]).includes(sort)) throw new ConfigError(`--sort ${sort}: expected ${SORT_KEYS.join(', ')}`);
  const url = v.url as string;
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw new ConfigError(`--url ${url}: expected http://host:port`);
  return {
    url,
    stateDir: (v['state-dir'] as string) || null,
    podResourcesSocket: (v['pod-resources-socket'] as string) || null,
    procRoot: v['proc-root'] as string,
    once: v.once as boolean,
    sort: sort as SortKey,
  };
}

export interface RemoveAgentsConfig {
  daemonSet: DaemonSetRef;
  kubeconfig: string | null;
  timeoutMs: number;
}

/** `emuv remove-agents`: the chart's pre-delete hook. */
export function parseRemoveAgentsConfig(argv: string[], env: Record<string, string | undefined>): RemoveAgentsConfig {
  const v = parseFlags(REMOVE_AGENTS_FLAGS, argv, env);
  const daemonSet = parseOwnerDaemonSet(v['owner-daemonset'] as string);
  if (!daemonSet)
    throw new ConfigError('--owner-daemonset is required: <namespace>/<name> of the agent DaemonSet, e.g. emuv-system/emuv-agent');
  const timeout = v.timeout as string;
  if (!/^[1-9][0-9]{0,4}$/.test(timeout)) throw new ConfigError(`--timeout ${timeout}: expected whole seconds, 1 to 99999`);
  return { daemonSet, kubeconfig: (v.kubeconfig as string) || null, timeoutMs: Number(timeout) * 1000 };
}

export function usage(command: 'discover' | 'plugin' | 'top' | 'status' | 'remove-agents'): string {
  const flags: FlagSpec =
    command === 'plugin'
      ? PLUGIN_FLAGS
      : command === 'discover'
        ? DISCOVER_FLAGS
        : command === 'remove-agents'
          ? REMOVE_AGENTS_FLAGS
          : VIEWER_FLAGS;
  const lines = Object.entries(flags).map(([name, f]) => {
    const def = f.default !== undefined && f.default !== '' ? ` (default ${String(f.default)})` : '';
    return `  --${name.padEnd(20)} ${f.help}${def}  [${envName(name)}]`;
  });
  return `usage: emuv ${command} [flags]\n${lines.join('\n')}`;
}

function parseFlags(spec: FlagSpec, argv: string[], env: Record<string, string | undefined>): Record<string, string | boolean | string[]> {
  // Defaults are applied below, after the environment: parseArgs would otherwise fill them in and
  // hide the EMUV_* values.
  const options = Object.fromEntries(Object.entries(spec).map(([k, f]) => [k, { type: f.type, multiple: f.multiple ?? false }]));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}; run with --help for the flags`);
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const out: Record<string, string | boolean | string[]> = {};
  for (const [name, f] of Object.entries(spec)) {
    const fromFlag = values[name];
    const fromEnv = env[envName(name)];
    if (fromFlag !== undefined) out[name] = fromFlag;
    else if (fromEnv !== undefined && fromEnv !== '') {
      if (f.multiple)
        out[name] = fromEnv
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
      else if (f.type === 'boolean') {
        if (fromEnv !== 'true' && fromEnv !== 'false') throw new ConfigError(`${envName(name)}="${fromEnv}": expected true or false`);
        out[name] = fromEnv === 'true';
      } else out[name] = fromEnv;
    } else if (f.default !== undefined) out[name] = f.default;
    else if (f.multiple) out[name] = [];
  }
  return out;
}

/** Size in bytes as a JS number; names the flag on error. */
export function parseBytesFlag(flag: string, text: string): number {
  let v: bigint;
  try {
    v = parseSize(text);
  } catch (err) {
    throw new ConfigError(`--${flag}: ${(err as Error).message}`);
  }
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ConfigError(`--${flag}: ${text} is too large`);
  return Number(v);
}

export function parseGpuMemory(entries: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of entries) {
    const m = /^([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])=(.+)$/.exec(e);
    if (!m) throw new ConfigError(`--gpu-memory "${e}": expected <pci-address>=<size>, e.g. 0000:01:00.0=8Gi`);
    const address = m[1]!.toLowerCase();
    if (out.has(address)) throw new ConfigError(`--gpu-memory: ${address} given twice`);
    const bytes = parseBytesFlag('gpu-memory', m[2]!);
    if (bytes === 0) throw new ConfigError(`--gpu-memory "${e}": size must be above 0`);
    out.set(address, bytes);
  }
  return out;
}

export function parseHostSpill(text: string): HostBudget {
  if (text === 'auto') return { kind: 'auto' };
  const pct = /^([0-9]{1,3})%$/.exec(text);
  if (pct) {
    const percent = Number(pct[1]);
    if (percent > 100) throw new ConfigError(`--host-spill ${text}: a percent must be from 0% to 100%`);
    return { kind: 'percent', percent };
  }
  return { kind: 'bytes', bytes: parseBytesFlag('host-spill', text) };
}

function parseCommon(v: Record<string, string | boolean | string[]>): CommonConfig {
  const str = (k: string) => v[k] as string;
  const slots = str('slots-per-gpu');
  if (!/^[0-9]{1,3}$/.test(slots) || Number(slots) < 1 || Number(slots) > MAX_SLOTS_PER_GPU)
    throw new ConfigError(`--slots-per-gpu ${slots}: expected an integer from 1 to ${MAX_SLOTS_PER_GPU}`);
  const mode = str('vram-mode');
  if (!(VRAM_MODES as readonly string[]).includes(mode)) throw new ConfigError(`--vram-mode ${mode}: expected fill or fixed`);
  const level = str('log-level');
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new ConfigError(`--log-level ${level}: expected ${LOG_LEVELS.join(', ')}`);
  const nvml = str('nvml-library');
  return {
    sysRoot: str('sys-root'),
    procRoot: str('proc-root'),
    devRoot: str('dev-root'),
    gpuMemory: parseGpuMemory(v['gpu-memory'] as string[]),
    nvmlLibrary: nvml === 'off' ? null : nvml,
    capacity: {
      slotsPerGpu: Number(slots),
      reserveBytes: parseBytesFlag('vram-reserve', str('vram-reserve')),
      hostBudget: parseHostSpill(str('host-spill')),
      vramMode: mode as VramMode,
    },
    logLevel: level as LogLevel,
  };
}

export function parseDiscoverConfig(argv: string[], env: Record<string, string | undefined>): DiscoverConfig {
  const v = parseFlags(DISCOVER_FLAGS, argv, env);
  return { ...parseCommon(v), json: v.json as boolean };
}

export function parseListenAddress(flag: string, text: string): { host: string; port: number } | null {
  if (text === 'off') return null;
  const m = /^(.*):([0-9]{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 65535) throw new ConfigError(`--${flag} ${text}: expected [host]:port or off`);
  return { host: m[1] === '' ? '0.0.0.0' : m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/**
 * `<namespace>/<name>`: a namespace is a DNS-1123 label, a DaemonSet name a DNS-1123 subdomain, as the
 * API has them. Empty: the feature is off. (A well-formed name of no DaemonSet would read as "uninstalled"
 * at SIGTERM; the agent checks at start that it exists.)
 */
export function parseOwnerDaemonSet(text: string): DaemonSetRef | null {
  if (text === '') return null;
  const label = '[a-z0-9](?:[-a-z0-9]*[a-z0-9])?';
  const m = new RegExp(`^(?<namespace>${label})/(?<name>${label}(?:\\.${label})*)$`).exec(text);
  const namespace = m?.groups?.namespace ?? '';
  const name = m?.groups?.name ?? '';
  if (!m || namespace.length > 63 || name.length > 253)
    throw new ConfigError(`--owner-daemonset ${text}: expected <namespace>/<name> (lowercase DNS names), e.g. emuv-system/emuv-agent`);
  return { namespace, name };
}

export function parsePluginConfig(argv: string[], env: Record<string, string | undefined>): PluginConfig {
  const v = parseFlags(PLUGIN_FLAGS, argv, env);
  const str = (k: string) => v[k] as string;
  const nodeStatus = str('node-status');
  if (nodeStatus !== 'on' && nodeStatus !== 'off') throw new ConfigError(`--node-status ${nodeStatus}: expected on or off`);
  const nodeName = str('node-name') || env.NODE_NAME || '';
  if (nodeStatus === 'on' && !nodeName) throw new ConfigError('--node-name (or NODE_NAME) is required unless --node-status=off');
  return {
    ...parseCommon(v),
    hostDevDir: str('host-dev-dir'),
    devicePluginDir: str('device-plugin-dir'),
    stateDir: str('state-dir'),
    interposerDir: str('interposer-dir'),
    interposerSource: str('interposer-source') || null,
    driverLibDir: str('driver-lib-dir'),
    nodeName,
    nodeStatus: nodeStatus === 'on',
    kubeconfig: str('kubeconfig') || null,
    metrics: parseListenAddress('metrics-addr', str('metrics-addr')),
    podResourcesSocket: str('pod-resources-socket') === 'off' ? null : str('pod-resources-socket'),
    ownerDaemonSet: parseOwnerDaemonSet(str('owner-daemonset')),
  };
}

/**
 * `emuv plugin`, the node agent: its flag table and its typed configuration. The node's flags (roots,
 * NVML, capacity) are NODE_FLAGS, shared with `emuv discover`.
 */
import { ALLOCATION_VALUES, DEFAULT_ALLOCATION, type Allocation } from '../../common/contracts/dra.ts';
import { ConfigError } from '../../common/errors.ts';
import {
  defineCommand,
  oneOf,
  kubeconfigFlag,
  kubeconfigRef,
  offOr,
  onOff,
  optionalText,
  parseFlags,
  path,
  valueType,
  type KubeconfigRef,
} from '../../common/flags.ts';
import type { DaemonSetRef } from '../agent/uninstall.ts';
import { commonConfig, NODE_FLAGS, type CommonConfig } from './node.ts';
import { AGENT_ENV_PREFIX } from './program.ts';

/** `[host]:port` -> where to listen; an empty host is every address. */
export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(.*):([0-9]{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 65535) throw new Error('expected [host]:port or off');
  return { host: m[1] === '' ? '0.0.0.0' : m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/**
 * `<namespace>/<name>`: a namespace is a DNS-1123 label, a DaemonSet name a DNS-1123 subdomain, as the API
 * has them. (A well-formed name of no DaemonSet would read as "uninstalled" at SIGTERM; the agent checks
 * at start that it exists.)
 */
export function parseOwnerDaemonSet(text: string): DaemonSetRef {
  const label = '[a-z0-9](?:[-a-z0-9]*[a-z0-9])?';
  const m = new RegExp(`^(?<namespace>${label})/(?<name>${label}(?:\\.${label})*)$`).exec(text);
  const namespace = m?.groups?.namespace ?? '';
  const name = m?.groups?.name ?? '';
  if (!m || namespace.length > 63 || name.length > 253)
    throw new Error('expected <namespace>/<name> (lowercase DNS names), e.g. emuv-system/emuv-agent');
  return { namespace, name };
}

/** `--owner-daemonset`: '' (the default) is off. */
export const ownerDaemonSet = valueType('<namespace>/<name>', (t) => (t === '' ? null : parseOwnerDaemonSet(t)));

export const PLUGIN_COMMAND = defineCommand({
  command: 'emuv plugin',
  envPrefix: AGENT_ENV_PREFIX,
  flags: {
    ...NODE_FLAGS,
    'host-dev-dir': {
      type: path(),
      default: '/dev',
      help: 'the host path of --dev-root: what the kubelet is told in DeviceSpec.host_path',
      doc: 'the host path of `--dev-root`: what the kubelet is told in `DeviceSpec.host_path`',
    },
    'device-plugin-dir': { type: path(), default: '/var/lib/kubelet/device-plugins', help: "the kubelet's device-plugin directory" },
    'state-dir': { type: path(), default: '/run/emuv', help: 'host directory of the per-allocation stats directories' },
    'interposer-dir': { type: path(), default: '/usr/local/emuv', help: 'host directory the interposer is installed into' },
    'interposer-source': {
      type: optionalText('<path>'),
      default: '',
      defaultText: '`native/build/lib` of the package',
      help: 'where the built libemuv-*.so are taken from',
      doc: 'where the built `libemuv-*.so` are taken from',
    },
    'driver-lib-dir': {
      type: path(),
      default: '/usr/lib/x86_64-linux-gnu',
      help: 'directory of the real libcuda.so.1 inside GPU containers',
      doc: 'directory of the real `libcuda.so.1` inside GPU containers',
    },
    'node-name': {
      type: optionalText('<name>'),
      default: '',
      // The DaemonSet passes it through the downward API (spec.nodeName).
      fallbackEnv: ['NODE_NAME'],
      help: 'this Node; required unless --node-status=off',
      doc: 'this Node (the chart sets `NODE_NAME` from the downward API); required unless `--node-status=off`',
    },
    'node-status': {
      type: onOff,
      default: 'on',
      help: 'off runs the device plugin alone, with no Kubernetes API at all',
      doc: '`off` runs the device plugin alone, with no Kubernetes API at all',
    },
    kubeconfig: kubeconfigFlag,
    'metrics-addr': {
      type: offOr(valueType('[host]:port', parseListenAddress)),
      default: ':9402',
      help: 'address of /metrics, /healthz, /readyz and /status, or off',
      doc: 'address of `/metrics`, `/healthz`, `/readyz` and `/status`, or `off`',
    },
    'pod-resources-socket': {
      type: offOr(path('<socket>')),
      default: '/var/lib/kubelet/pod-resources/kubelet.sock',
      help: "the kubelet's PodResources socket, which names the pod and container of each stats file; off to show containers unnamed",
      doc: "the kubelet's PodResources socket, which names the pod and container of each stats file; `off` to show containers unnamed",
    },
    dra: {
      type: onOff,
      default: 'off',
      help: "on lets the agent serve DRA (a kubelet DRA plugin and this node's ResourceSlice); needs the Kubernetes API",
      doc: "`on` lets the agent serve [DRA](dra.md) (a kubelet DRA plugin and this node's ResourceSlice); needs `--node-status=on`",
    },
    allocation: {
      type: oneOf(ALLOCATION_VALUES),
      default: DEFAULT_ALLOCATION,
      help: 'how this node serves virtual GPU memory when its EmuvNode does not say: DevicePlugin or DRA (needs --dra=on)',
      doc: "how this node serves virtual GPU memory when its EmuvNode does not say: `DevicePlugin` or `DRA` (needs `--dra=on`); an EmuvNode's `allocation` replaces it",
    },
    'cdi-dir': {
      type: path(),
      default: '/var/run/cdi',
      help: 'host directory the container runtime reads CDI specs from; DRA writes one spec per prepared claim there',
    },
    'kubelet-plugins-dir': {
      type: path(),
      default: '/var/lib/kubelet/plugins',
      help: "the kubelet's plugins directory; the DRA socket is <dir>/gpu.emuv.io/dra.sock (same path inside and outside the agent's container)",
      doc: "the kubelet's plugins directory; the DRA socket is `<dir>/gpu.emuv.io/dra.sock` (same path inside and outside the agent's container)",
    },
    'kubelet-registry-dir': {
      type: path(),
      default: '/var/lib/kubelet/plugins_registry',
      help: "the kubelet's plugin registration directory",
    },
    'owner-daemonset': {
      type: ownerDaemonSet,
      default: '',
      help: '<namespace>/<name> of the DaemonSet that runs the agent; at SIGTERM, gone or being deleted means emuv is being uninstalled and the agent cleans its node',
      doc:
        '`<namespace>/<name>` of the DaemonSet that runs the agent; at SIGTERM, gone or being deleted means emuv is being ' +
        'uninstalled and the agent cleans its node ([Uninstall](#uninstall)); the chart sets it',
    },
  },
});

export interface PluginConfig extends CommonConfig {
  hostDevDir: string;
  devicePluginDir: string;
  stateDir: string;
  interposerDir: string;
  interposerSource: string | null;
  driverLibDir: string;
  nodeName: string;
  nodeStatus: boolean;
  kubeconfig: KubeconfigRef | null;
  metrics: { host: string; port: number } | null;
  podResourcesSocket: string | null;
  /** The agent's own DaemonSet, asked about at SIGTERM (uninstall cleanup); null: never asked. */
  ownerDaemonSet: DaemonSetRef | null;
  dra: { enabled: boolean; allocation: Allocation; cdiDir: string; kubeletPluginsDir: string; kubeletRegistryDir: string };
}

export function parsePluginConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): PluginConfig {
  const { values: v, from } = parseFlags(PLUGIN_COMMAND, argv, env);
  const nodeName = v['node-name'] ?? '';
  if (v['node-status'] && !nodeName)
    throw new ConfigError(`--node-name (or ${AGENT_ENV_PREFIX}NODE_NAME, or NODE_NAME) is required unless --node-status=off`);
  if (v.dra && !v['node-status'])
    throw new ConfigError(
      '--dra=on needs --node-status=on: DRA publishes ResourceSlices and reads ResourceClaims through the Kubernetes API',
    );
  if (v.allocation === 'DRA' && !v.dra) throw new ConfigError('--allocation=DRA needs --dra=on');
  return {
    ...commonConfig(v),
    hostDevDir: v['host-dev-dir'],
    devicePluginDir: v['device-plugin-dir'],
    stateDir: v['state-dir'],
    interposerDir: v['interposer-dir'],
    interposerSource: v['interposer-source'],
    driverLibDir: v['driver-lib-dir'],
    nodeName,
    nodeStatus: v['node-status'],
    kubeconfig: kubeconfigRef(v.kubeconfig, from.kubeconfig),
    metrics: v['metrics-addr'],
    podResourcesSocket: v['pod-resources-socket'],
    ownerDaemonSet: v['owner-daemonset'],
    dra: {
      enabled: v.dra,
      allocation: v.allocation,
      cdiDir: v['cdi-dir'],
      kubeletPluginsDir: v['kubelet-plugins-dir'],
      kubeletRegistryDir: v['kubelet-registry-dir'],
    },
  };
}

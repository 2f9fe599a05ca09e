/** `emuv top` and `emuv status`: where the node's usage is read from, and how top shows it. */
import {
  defineCommand,
  kubeconfigFlag,
  kubeconfigRef,
  onOff,
  oneOf,
  optionalText,
  parseFlags,
  path,
  valueType,
  type KubeconfigRef,
} from '../../common/flags.ts';
import { ConfigError } from '../../common/errors.ts';
import { ColorModes, type ColorMode } from '../top/frame.ts';
import { SORT_KEYS, type SortKey } from '../top/render.ts';
import { AGENT_ENV_PREFIX } from './program.ts';

const agentUrl = valueType('<url>', (t) => {
  if (!/^https?:\/\/[^\s]+$/.test(t)) throw new Error('expected http://host:port');
  return t;
});

export const VIEWER_COMMAND = defineCommand({
  command: 'emuv top|status',
  envPrefix: AGENT_ENV_PREFIX,
  flags: {
    url: {
      type: agentUrl,
      default: 'http://127.0.0.1:9402',
      help: "the agent's address (e.g. through kubectl port-forward)",
      doc: "the agent's address (e.g. through `kubectl port-forward`)",
    },
    'agents-namespace': {
      type: optionalText('<namespace>'),
      default: '',
      help: "read every node's agent through the Kubernetes API: the chart's agent pods in this namespace ([ and ] pick the node)",
      doc: "read every node's agent through the Kubernetes API (pod proxy, no port-forward): the chart's agent pods in this namespace, e.g. `emuv-system`; `[` and `]` pick the node",
    },
    kubeconfig: {
      ...kubeconfigFlag,
      help: 'with --agents-namespace: kubeconfig file for the Kubernetes API',
      doc: 'with `--agents-namespace`: kubeconfig file for the Kubernetes API',
    },
    'state-dir': {
      type: optionalText('<path>'),
      default: '',
      help: "read the node's stats files from this directory instead of asking the agent",
    },
    'pod-resources-socket': {
      type: optionalText('<socket>'),
      default: '',
      help: 'with --state-dir: name containers through this PodResources socket',
      doc: 'with `--state-dir`: name containers through this PodResources socket',
    },
    'proc-root': {
      type: path(),
      default: '/proc',
      help: "with --state-dir: the host's /proc, to tell running CUDA processes from exited ones",
      doc: "with `--state-dir`: the host's `/proc`, to tell running CUDA processes from exited ones",
    },
    once: { type: onOff, default: 'off', help: 'top: print one snapshot and exit' },
    sort: { type: oneOf(SORT_KEYS), default: 'spill', help: 'top: sort containers by this column' },
    color: {
      type: oneOf(ColorModes),
      default: 'auto',
      help: 'top: colours; auto: on a terminal unless NO_COLOR is set',
      doc: 'top: colours; `auto`: on a terminal unless `NO_COLOR` is set',
    },
  },
});

export interface ViewerConfig {
  url: string;
  agentsNamespace: string | null;
  kubeconfig: KubeconfigRef | null;
  stateDir: string | null;
  podResourcesSocket: string | null;
  procRoot: string;
  once: boolean;
  sort: SortKey;
  color: ColorMode;
}

export function parseViewerConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ViewerConfig {
  const { values: v, from } = parseFlags(VIEWER_COMMAND, argv, env);
  if (v['agents-namespace'] && v['state-dir'])
    throw new ConfigError('--agents-namespace and --state-dir name two different sources: give one (or neither, for --url)');
  return {
    url: v.url,
    agentsNamespace: v['agents-namespace'],
    kubeconfig: kubeconfigRef(v.kubeconfig, from.kubeconfig),
    stateDir: v['state-dir'],
    podResourcesSocket: v['pod-resources-socket'],
    procRoot: v['proc-root'],
    once: v.once,
    sort: v.sort,
    color: v.color,
  };
}

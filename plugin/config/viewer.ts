/** `emuv top` and `emuv status`: where the node's usage is read from, and how top shows it. */
import { defineCommand, onOff, oneOf, optionalText, parseFlags, path, valueType } from '../../common/flags.ts';
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
  stateDir: string | null;
  podResourcesSocket: string | null;
  procRoot: string;
  once: boolean;
  sort: SortKey;
  color: ColorMode;
}

export function parseViewerConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ViewerConfig {
  const { values: v } = parseFlags(VIEWER_COMMAND, argv, env);
  return {
    url: v.url,
    stateDir: v['state-dir'],
    podResourcesSocket: v['pod-resources-socket'],
    procRoot: v['proc-root'],
    once: v.once,
    sort: v.sort,
    color: v.color,
  };
}

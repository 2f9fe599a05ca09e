/** `emuv discover`: the node's flags (NODE_FLAGS, shared with the agent) and `--json`. */
import { defineCommand, onOff, parseFlags } from '../../common/flags.ts';
import { commonConfig, NODE_FLAGS, type CommonConfig } from './node.ts';
import { AGENT_ENV_PREFIX } from './program.ts';

export const DISCOVER_COMMAND = defineCommand({
  command: 'emuv discover',
  envPrefix: AGENT_ENV_PREFIX,
  flags: {
    ...NODE_FLAGS,
    json: {
      type: onOff,
      default: 'off',
      help: 'print the versioned emuv.io/discover/v1 JSON document',
      doc: 'print the versioned [`emuv.io/discover/v1`](discover-json.md) JSON document',
    },
  },
});

export interface DiscoverConfig extends CommonConfig {
  json: boolean;
}

export function parseDiscoverConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): DiscoverConfig {
  const { values } = parseFlags(DISCOVER_COMMAND, argv, env);
  return { ...commonConfig(values), json: values.json };
}

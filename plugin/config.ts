/**
 * Configuration of the `emuv` commands, one module per command under config/ (its flag table and its
 * typed result), all read through common/flags.ts. This file is the one import path for the commands'
 * parsers, their tables (usage, docs, the variable tests) and the program's variable names.
 */
import { envName as flagEnvName, usage as renderUsage } from '../common/flags.ts';
import { DISCOVER_COMMAND } from './config/discover.ts';
import { PLUGIN_COMMAND } from './config/plugin.ts';
import { AGENT_ENV_PREFIX } from './config/program.ts';
import { REMOVE_AGENTS_COMMAND } from './config/remove-agents.ts';
import { RUN_COMMAND } from './config/run.ts'; // emuv run (issue 14)
import { VIEWER_COMMAND } from './config/viewer.ts';

export { AGENT_ENV_PREFIX } from './config/program.ts';
export { type CommonConfig } from './config/node.ts';
export { DISCOVER_COMMAND, parseDiscoverConfig, type DiscoverConfig } from './config/discover.ts';
export { parseListenAddress, parseOwnerDaemonSet, parsePluginConfig, PLUGIN_COMMAND, type PluginConfig } from './config/plugin.ts';
export { parseRemoveAgentsConfig, REMOVE_AGENTS_COMMAND, type RemoveAgentsConfig } from './config/remove-agents.ts';
export { parseViewerConfig, VIEWER_COMMAND, type ViewerConfig } from './config/viewer.ts';
export { defaultRunStateDir, parseRunConfig, RUN_COMMAND, RUN_EXAMPLE, type RunConfig } from './config/run.ts'; // emuv run (issue 14)

/** Every command of `emuv` and its table. */
export const COMMANDS = {
  discover: DISCOVER_COMMAND,
  plugin: PLUGIN_COMMAND,
  top: VIEWER_COMMAND,
  status: VIEWER_COMMAND,
  'remove-agents': REMOVE_AGENTS_COMMAND,
  run: RUN_COMMAND, // emuv run (issue 14)
} as const;

export type Command = keyof typeof COMMANDS;

export function usage(command: Command): string {
  return renderUsage(COMMANDS[command]);
}

/** The variable of an `emuv` flag: `state-dir` -> `EMUV_AGENT_STATE_DIR`. */
export function envName(flag: string): string {
  return flagEnvName(AGENT_ENV_PREFIX, flag);
}

/** `emuv remove-agents`, the chart's pre-delete hook: which DaemonSet, which API, how long to wait. */
import { ConfigError } from '../../common/errors.ts';
import { defineCommand, kubeconfigFlag, kubeconfigRef, parseFlags, valueType, type KubeconfigRef } from '../../common/flags.ts';
import type { DaemonSetRef } from '../agent/uninstall.ts';
import { ownerDaemonSet } from './plugin.ts';
import { AGENT_ENV_PREFIX } from './program.ts';

const seconds = valueType('<seconds>', (t) => {
  if (!/^[1-9][0-9]{0,4}$/.test(t)) throw new Error('expected whole seconds, 1 to 99999');
  return Number(t) * 1000;
});

export const REMOVE_AGENTS_COMMAND = defineCommand({
  command: 'emuv remove-agents',
  envPrefix: AGENT_ENV_PREFIX,
  flags: {
    'owner-daemonset': {
      type: ownerDaemonSet,
      default: '',
      help: '<namespace>/<name> of the agent DaemonSet to remove (required)',
      doc: '`<namespace>/<name>` of the agent DaemonSet to remove (required; the chart sets it)',
    },
    kubeconfig: kubeconfigFlag,
    timeout: { type: seconds, default: '120', help: 'seconds to wait for every agent to clean its node and exit' },
  },
});

export interface RemoveAgentsConfig {
  daemonSet: DaemonSetRef;
  kubeconfig: KubeconfigRef | null;
  timeoutMs: number;
}

export function parseRemoveAgentsConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): RemoveAgentsConfig {
  const { values: v, from } = parseFlags(REMOVE_AGENTS_COMMAND, argv, env);
  const daemonSet = v['owner-daemonset'];
  if (!daemonSet)
    throw new ConfigError('--owner-daemonset is required: <namespace>/<name> of the agent DaemonSet, e.g. emuv-system/emuv-agent');
  return { daemonSet, kubeconfig: kubeconfigRef(v.kubeconfig, from.kubeconfig), timeoutMs: v.timeout };
}

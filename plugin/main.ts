#!/usr/bin/env node
/**
 * `emuv`: the entry point and the only place that reads process.argv, process.env and signals.
 *   emuv discover [flags]   print the node's GPUs and the capacity the agent would publish
 *   emuv plugin [flags]     run the node agent (device plugin + node status)
 *   emuv top|status [flags] view an agent's /status
 *   emuv remove-agents      the chart's pre-delete hook (agent/remove-agents.ts)
 *   emuv run [flags] -- cmd run one command through the interposer, no Kubernetes (run/run.ts)
 */
import { ConfigError, errorLine } from '../common/errors.ts';
import { createLogger } from '../common/log.ts';
import { startAgent } from './agent/agent.ts';
import {
  COMMANDS,
  parseDiscoverConfig,
  parsePluginConfig,
  parseRemoveAgentsConfig,
  parseRunConfig, // emuv run (issue 14)
  RUN_EXAMPLE, // emuv run (issue 14)
  parseViewerConfig,
  usage,
  type Command,
  type CommonConfig,
} from './config.ts';
import { removeAgents } from './agent/remove-agents.ts';
import { clusterSource } from './top/cluster-source.ts';
import { agentSource, statsDirSource, type StatusSource } from './top/sources.ts';
import { runTop } from './top/top.ts';
import { discoverNode } from './discovery/discover.ts';
import { openNvml, type Nvml } from './discovery/nvml.ts';
import { discoverDocument, formatDiscoverText } from './discovery/report.ts';
import { buildInventory } from './inventory/inventory.ts';

const HELP = `usage: emuv <command> [flags]

commands:
  discover   print the node's NVIDIA GPUs and the virtual capacity emuv would publish
  plugin     run the node agent: device plugin for emuv.io/vgpu and node status for emuv.io/vram-virtual,
             or (--dra=on) a DRA driver publishing this node's ResourceSlice
  status     print the agent's /status document (JSON)
  top        live view of GPUs, virtual capacity, spill and containers (--once: one snapshot)
  remove-agents  delete the agent DaemonSet in the foreground and wait: every agent cleans its node first
                 (the Helm chart's pre-delete hook)
  run        run one command through the interposer on this machine, no Kubernetes:
             emuv run --limit 28Gi [flags] -- python infer.py

Run "emuv <command> --help" for its flags. Every flag --some-flag can be given as the variable
EMUV_AGENT_SOME_FLAG instead; a flag wins.
`;

function loadNvml(cfg: CommonConfig, warn: (msg: string) => void): Nvml | null {
  if (!cfg.nvmlLibrary) return null;
  const r = openNvml(cfg.nvmlLibrary);
  if (!r.nvml) warn(r.reason);
  return r.nvml;
}

async function discover(argv: string[]): Promise<number> {
  const cfg = parseDiscoverConfig(argv, process.env);
  const nvml = loadNvml(cfg, () => {}); // absence of NVML is reported in the output itself
  try {
    const node = discoverNode({ sysRoot: cfg.sysRoot, procRoot: cfg.procRoot, nvml, gpuMemory: cfg.gpuMemory });
    const inv = buildInventory(node, cfg.capacity);
    process.stdout.write(
      cfg.json ? `${JSON.stringify(discoverDocument(node, inv, cfg.capacity), null, 2)}\n` : formatDiscoverText(node, inv, cfg.capacity),
    );
  } finally {
    nvml?.close();
  }
  return 0;
}

async function plugin(argv: string[]): Promise<number> {
  const cfg = parsePluginConfig(argv, process.env);
  const logger = createLogger({ level: cfg.logLevel, component: 'agent' });
  const nvml = loadNvml(cfg, (reason) => logger.info('nvml unavailable', { reason }));
  let nodeApi;
  let emuvNodeApi;
  let uninstallApi;
  let sliceApi;
  let claimApi;
  if (cfg.nodeStatus) {
    // Loaded only when needed: the Kubernetes client is most of the agent's memory.
    const { createClaimApi, createEmuvNodeApi, createNodeApi, createSliceApi, createUninstallApi, loadKubeConfig } =
      await import('./agent/kube-node-api.ts');
    const kc = loadKubeConfig(cfg.kubeconfig?.path ?? null, cfg.kubeconfig?.from);
    nodeApi = createNodeApi(kc);
    emuvNodeApi = createEmuvNodeApi(kc);
    // Each call at SIGTERM gives up after 5 s: the whole must fit in the pod's 30 s grace period.
    if (cfg.ownerDaemonSet) uninstallApi = createUninstallApi(kc, 5000);
    if (cfg.dra.enabled) {
      sliceApi = createSliceApi(kc);
      claimApi = createClaimApi(kc);
    }
  }
  const agent = await startAgent(cfg, { logger, nvml, nodeApi, emuvNodeApi, uninstallApi, sliceApi, claimApi });
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      logger.info('stopping', { signal });
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    // From here a SIGTERM stops the agent in order (and may clean up); before, it kills the process.
    logger.info('running');
  });
  await agent.terminate();
  logger.info('stopped');
  return 0;
}

async function viewer(command: 'top' | 'status', argv: string[]): Promise<number> {
  const cfg = parseViewerConfig(argv, process.env);
  let source: StatusSource;
  if (cfg.agentsNamespace) {
    // Loaded only here: the Kubernetes client is a large import that the other sources do not need.
    const { createAgentPodsApi, loadKubeConfig } = await import('./agent/kube-node-api.ts');
    const kc = loadKubeConfig(cfg.kubeconfig?.path ?? null, cfg.kubeconfig?.from);
    source = clusterSource(createAgentPodsApi(kc, 5000), cfg.agentsNamespace);
  } else source = cfg.stateDir ? statsDirSource(cfg.stateDir, cfg.podResourcesSocket, cfg.procRoot) : agentSource(cfg.url);
  try {
    if (command === 'status') {
      process.stdout.write(`${JSON.stringify(await source.fetch(), null, 2)}\n`);
      return 0;
    }
    await runTop({ source, once: cfg.once, sort: cfg.sort, color: cfg.color, intervalMs: 1000, out: process.stdout, input: process.stdin });
    return 0;
  } finally {
    source.close();
  }
}

async function removeAgentsCommand(argv: string[]): Promise<number> {
  const cfg = parseRemoveAgentsConfig(argv, process.env);
  const logger = createLogger({ level: 'info', component: 'remove-agents' });
  const { createRemoveAgentsApi, loadKubeConfig } = await import('./agent/kube-node-api.ts');
  const daemonSet = `${cfg.daemonSet.namespace}/${cfg.daemonSet.name}`;
  logger.info('deleting the agent DaemonSet in the foreground; each agent cleans its node before it exits', { daemonSet });
  const kc = loadKubeConfig(cfg.kubeconfig?.path ?? null, cfg.kubeconfig?.from);
  const r = await removeAgents(createRemoveAgentsApi(kc, 10_000), cfg.daemonSet, { timeoutMs: cfg.timeoutMs });
  if (r.outcome === 'timeout') {
    // Exit 0 all the same: a node that is down (its agent pod stuck terminating) must not block the
    // uninstall of the whole cluster; what that node keeps is documented (docs/agent.md, Uninstall).
    logger.error('agents still running at the deadline; their nodes may keep emuv files and node status (docs/agent.md, Uninstall)', {
      daemonSet,
      waitedMs: r.waitedMs,
    });
    return 0;
  }
  logger.info(r.outcome === 'gone' ? 'every agent has cleaned its node and exited' : 'no agent DaemonSet: nothing to do', {
    daemonSet,
    waitedMs: r.waitedMs,
  });
  return 0;
}

// emuv run (issue 14): the command's environment, and the signals it forwards, come from here.
async function runCommand(argv: string[]): Promise<number> {
  const cfg = parseRunConfig(argv, process.env);
  // Loaded only when needed, as the Kubernetes client is: nothing of it runs in the agent.
  const { emuvRun, FORWARDED_SIGNALS } = await import('./run/run.ts');
  return emuvRun(cfg, {
    env: process.env,
    stderr: (line) => process.stderr.write(line),
    onSignals: (forward) => {
      const handlers = FORWARDED_SIGNALS.map((s) => [s, () => forward(s)] as const);
      for (const [s, h] of handlers) process.on(s, h);
      return () => {
        for (const [s, h] of handlers) process.off(s, h);
      };
    },
  });
}

const RUN: Record<Command, (argv: string[]) => Promise<number>> = {
  discover,
  plugin,
  top: (argv) => viewer('top', argv),
  status: (argv) => viewer('status', argv),
  'remove-agents': removeAgentsCommand,
  run: runCommand, // emuv run (issue 14)
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== undefined && Object.hasOwn(COMMANDS, command)) {
    // Flags end at `--` (emuv run: what follows is the command's own, --help included).
    const flagArgs = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
    if (flagArgs.includes('--help') || flagArgs.includes('-h')) {
      process.stdout.write(`${usage(command as Command)}\n${command === 'run' ? `The command goes after --: ${RUN_EXAMPLE}\n` : ''}`);
      return 0;
    }
    return RUN[command as Command](rest);
  }
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined ? 2 : 0;
  }
  process.stderr.write(`emuv: unknown command "${command}"\n\n${HELP}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`emuv: ${errorLine(err)}\n`);
    // Exit now rather than when the event loop drains: a start-up failure has already stopped what the
    // agent started, and nothing left (a client's idle socket, a timer) may keep a failed process alive.
    process.exit(err instanceof ConfigError ? 2 : 1);
  },
);

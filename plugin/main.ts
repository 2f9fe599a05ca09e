#!/usr/bin/env node
/**
 * `emuv`: the entry point and the only place that reads process.argv, process.env and signals.
 *   emuv discover [flags]   print the node's GPUs and the capacity the agent would publish
 *   emuv plugin [flags]     run the node agent (device plugin + node status)
 */
import { ConfigError } from '../common/errors.ts';
import { createLogger, errFields } from '../common/log.ts';
import { startAgent } from './agent/agent.ts';
import { parseDiscoverConfig, parsePluginConfig, parseViewerConfig, usage, type CommonConfig } from './config.ts';
import { agentSource, statsDirSource } from './top/sources.ts';
import { runTop } from './top/top.ts';
import { discoverNode } from './discovery/discover.ts';
import { openNvml, type Nvml } from './discovery/nvml.ts';
import { discoverDocument, formatDiscoverText } from './discovery/report.ts';
import { buildInventory } from './inventory/inventory.ts';

const HELP = `usage: emuv <command> [flags]

commands:
  discover   print the node's NVIDIA GPUs and the virtual capacity emuv would publish
  plugin     run the node agent: device plugin for emuv.io/vgpu and node status for emuv.io/vram-virtual
  status     print the agent's /status document (JSON)
  top        live view of GPUs, virtual capacity, spill and containers (--once: one snapshot)

Run "emuv <command> --help" for its flags.
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
  if (cfg.nodeStatus) {
    // Loaded only when needed: the Kubernetes client is most of the agent's memory.
    const { createEmuvNodeApi, createNodeApi, loadKubeConfig } = await import('./agent/kube-node-api.ts');
    const kc = loadKubeConfig(cfg.kubeconfig);
    nodeApi = createNodeApi(kc);
    emuvNodeApi = createEmuvNodeApi(kc);
  }
  const agent = await startAgent(cfg, { logger, nvml, nodeApi, emuvNodeApi });
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      logger.info('stopping', { signal });
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  await agent.stop();
  logger.info('stopped');
  return 0;
}

async function viewer(command: 'top' | 'status', argv: string[]): Promise<number> {
  const cfg = parseViewerConfig(argv, process.env);
  const source = cfg.stateDir ? statsDirSource(cfg.stateDir, cfg.podResourcesSocket) : agentSource(cfg.url);
  try {
    if (command === 'status') {
      process.stdout.write(`${JSON.stringify(await source.fetch(), null, 2)}\n`);
      return 0;
    }
    await runTop({ source, once: cfg.once, sort: cfg.sort, intervalMs: 1000, out: process.stdout, input: process.stdin });
    return 0;
  } finally {
    source.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'top' || command === 'status') {
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(`${usage(command)}\n`);
      return 0;
    }
    return viewer(command, rest);
  }
  if (command === 'discover' || command === 'plugin') {
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(`${usage(command)}\n`);
      return 0;
    }
    return command === 'discover' ? discover(rest) : plugin(rest);
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
    if (err instanceof ConfigError) process.stderr.write(`emuv: ${err.message}\n`);
    else process.stderr.write(`emuv: ${JSON.stringify(errFields(err))}\n`);
    process.exitCode = err instanceof ConfigError ? 2 : 1;
  },
);

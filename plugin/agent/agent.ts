/**
 * The node agent, wired: discovery -> inventory -> device state -> { device plugin, node status,
 * metrics }. Lifecycle only; every decision lives in the stages it wires. Collaborators that touch
 * the world beyond the configured roots (NVML, the Kubernetes API) are injected.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEVICE_PLUGIN_SOCKET, RESOURCE_VGPU } from '../../common/contracts/resources.ts';
import { describeSystemError, StartupError } from '../../common/errors.ts';
import { startHttpServer } from '../../common/http.ts';
import type { Logger } from '../../common/log.ts';
import { errFields } from '../../common/log.ts';
import { Periodic } from '../../common/periodic.ts';
import type { PluginConfig } from '../config.ts';
import { CONTROL_DEVICE_NODES, type AllocateEnvironment } from '../deviceplugin/allocate.ts';
import { DeviceState } from '../deviceplugin/device-state.ts';
import { probeHealth } from '../deviceplugin/health.ts';
import { statsDirPreparer } from '../deviceplugin/host-prep.ts';
import { DevicePluginLifecycle } from '../deviceplugin/lifecycle.ts';
import { createHandlers, PLUGIN_OPTIONS } from '../deviceplugin/server.ts';
import { discoverNode } from '../discovery/discover.ts';
import type { Nvml } from '../discovery/nvml.ts';
import { buildInventory, notOfferedReason } from '../inventory/inventory.ts';
import type { CapacityConfig } from '../inventory/capacity.ts';
import { createAgentMetrics, Registry } from '../metrics/definitions.ts';
import { readStatsFile } from '../stats/stats-reader.ts';
import { collectUsage } from '../usage/collector.ts';
import { procLiveness } from '../usage/liveness.ts';
import { ownersByAllocId } from '../usage/owners.ts';
import { podResourcesClient, type PodResourcesSource } from '../usage/pod-resources.ts';
import { buildStatus, type StatusDocument } from '../usage/status.ts';
import { installInterposer } from './interposer-install.ts';
import { applyNodeConfig, EmuvNodeSync, emuvNodeStatus, type EmuvNodeApi } from './emuv-node.ts';
import { desiredFromInventory, NodeStatusPublisher, type NodeApi } from './node-status.ts';
import { decideOnStop, runUninstallSteps, uninstallSteps, type DaemonSetRef, type UninstallApi } from './uninstall.ts';

export interface AgentDeps {
  logger: Logger;
  registry?: Registry;
  nvml: Nvml | null;
  /** Required when config.nodeStatus is on. */
  nodeApi?: NodeApi;
  /** This node's EmuvNode (spec applied live, status written); optional even with node status on. */
  emuvNodeApi?: EmuvNodeApi;
  /** Health poll interval. When unspecified, 500 ms (changes reach ListAndWatch within 1 s). */
  healthPollMs?: number;
  nodeStatusResyncMs?: number;
  /** How often the stats files are read. When unspecified, 2000 ms. */
  usageIntervalMs?: number;
  /** The kubelet's PodResources API. When unspecified, a client of config.podResourcesSocket (none when that is off). */
  podResources?: PodResourcesSource | null;
  /** Asked at terminate() whether emuv is being uninstalled; required with config.ownerDaemonSet and node status on. */
  uninstallApi?: UninstallApi;
  /** Limits of terminate(), from its start. When unspecified: 5000 ms to ask about the DaemonSet, 20000 ms in all. */
  ownerCheckTimeoutMs?: number;
  uninstallDeadlineMs?: number;
  /** How long the empty device list is given to reach the kubelet before the server stops. When unspecified, 500 ms. */
  uninstallFlushMs?: number;
}

export interface AgentHandle {
  lifecycle: DevicePluginLifecycle;
  state: DeviceState;
  /** Reads the stats files now and returns the fresh status document. */
  refreshStatus(): Promise<StatusDocument>;
  metricsPort: number | null;
  stop(): Promise<void>;
  /**
   * What SIGTERM does: with --owner-daemonset and node status on, ask whether the agent's DaemonSet is
   * gone or being deleted (emuv is being uninstalled) and if so remove what the agent put on the node;
   * then stop.
   */
  terminate(): Promise<void>;
}

/**
 * native/build/lib of this package, where `make -C native` puts the interposer. Found by walking up
 * to package.json, so it is the same from the sources (plugin/agent/) and from the bundle (dist/).
 */
export function defaultInterposerSource(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, 'native', 'build', 'lib');
}

function existingDevNodes(devRoot: string): Set<string> {
  try {
    const names = new Set(readdirSync(devRoot));
    return new Set([...names].filter((n) => (CONTROL_DEVICE_NODES as readonly string[]).includes(n) || /^nvidia[0-9]+$/.test(n)));
  } catch {
    return new Set();
  }
}

export async function startAgent(config: PluginConfig, deps: AgentDeps): Promise<AgentHandle> {
  const log = deps.logger;
  // What has been started so far, stopped in reverse order when a later step fails: a half-started agent
  // must not stay registered with the kubelet, nor keep the process alive, after start-up failed.
  const started: { what: string; stop: () => unknown }[] = [];
  const undo = async () => {
    for (const s of started.splice(0).reverse()) {
      try {
        await s.stop();
      } catch (err) {
        log.warn('cleanup after a failed start-up step failed', { step: s.what, ...errFields(err) });
      }
    }
  };
  try {
    return await startSteps(config, deps, (what, stop) => started.push({ what, stop }));
  } catch (err) {
    await undo();
    deps.nvml?.close();
    throw err;
  }
}

/** Why each offered GPU left out of the inventory is out, for the log: a capacity of 0 must say why. */
function logNotOffered(log: Logger, discovery: ReturnType<typeof discoverNode>, cfg: CapacityConfig, source: string): void {
  for (const g of discovery.gpus) {
    if (!g.offered) continue; // logged once at discovery, with its own reason
    const reason = notOfferedReason(g, cfg);
    if (reason) log.warn('gpu not offered', { gpu: g.pci.address, reason: `${reason} (${source})` });
  }
}

async function startSteps(
  config: PluginConfig,
  deps: AgentDeps,
  onStarted: (what: string, stop: () => unknown) => void,
): Promise<AgentHandle> {
  const log = deps.logger;
  let latest: StatusDocument | null = null;
  const metrics = createAgentMetrics(deps.registry ?? new Registry(), () => latest);

  const discovery = discoverNode({ sysRoot: config.sysRoot, procRoot: config.procRoot, nvml: deps.nvml, gpuMemory: config.gpuMemory });
  for (const p of discovery.problems) log.warn('discovery problem', { subject: p.subject, problem: p.message });
  for (const g of discovery.gpus) {
    if (g.offered)
      log.info('gpu offered', { gpu: g.pci.address, name: g.name, uuid: g.uuid, vramBytes: g.vramBytes, numa: g.pci.numaNode });
    else log.warn('gpu not offered', { gpu: g.pci.address, reason: g.reason });
  }
  const capacityMetrics = (inv: ReturnType<typeof buildInventory>) => {
    metrics.gpus.set({ offered: 'true' }, inv.gpus.length);
    metrics.gpus.set({ offered: 'false' }, discovery.gpus.length - inv.gpus.length);
    metrics.vramVirtualBytes.set(inv.vramVirtualBytes);
    metrics.hostBudgetBytes.set(inv.hostBudgetBytes);
    metrics.gpuVramBytes.reset();
    for (const g of inv.gpus) metrics.gpuVramBytes.set({ gpu: g.address }, g.vramBytes);
    log.info('capacity', { vramVirtualBytes: inv.vramVirtualBytes, vgpu: inv.vgpuCount, hostBudgetBytes: inv.hostBudgetBytes });
  };
  const inventory = buildInventory(discovery, config.capacity);
  logNotOffered(log, discovery, config.capacity, '--vram-reserve');
  capacityMetrics(inventory);

  const installed = installInterposer({
    sourceDir: config.interposerSource ?? defaultInterposerSource(),
    targetDir: config.interposerDir,
    driverLibDir: config.driverLibDir,
  });
  if (installed.install) log.info('interposer installed', { dir: config.interposerDir });
  else log.warn('interposer not installed', { reason: installed.reason });

  const state = new DeviceState(inventory);
  const updateHealth = () => {
    const health = probeHealth(state.inventory, { sysRoot: config.sysRoot, devRoot: config.devRoot }, deps.nvml);
    if (state.setHealth(health))
      for (const [gpu, h] of health) log.warn(h.healthy ? 'gpu healthy' : 'gpu unhealthy', { gpu, reason: h.reason });
    for (const [gpu, h] of health) metrics.gpuHealthy.set({ gpu }, h.healthy ? 1 : 0);
  };
  updateHealth();
  const healthTimer = setInterval(updateHealth, deps.healthPollMs ?? 500);
  healthTimer.unref();
  onStarted('health poll', () => clearInterval(healthTimer));

  let publisher: NodeStatusPublisher | null = null;
  // EmuvNode.spec (from the operator's policies) laid over the flags, applied live.
  let emuvNodeSync: EmuvNodeSync | null = null;
  if (config.nodeStatus && deps.emuvNodeApi) {
    emuvNodeSync = new EmuvNodeSync({
      nodeName: config.nodeName,
      api: deps.emuvNodeApi,
      logger: log.child({ module: 'emuv-node' }),
      resyncMs: deps.nodeStatusResyncMs ?? 5000,
      onConfig: (spec) => {
        const cfg = spec ? applyNodeConfig(config.capacity, spec) : config.capacity;
        const next = buildInventory(discovery, cfg);
        logNotOffered(log, discovery, cfg, spec ? `EmuvNode ${config.nodeName} spec.vramReservePerGpu` : '--vram-reserve');
        state.setInventory(next);
        capacityMetrics(next);
        // Before the publisher exists (the first pass), it publishes state.inventory when it starts.
        void publisher?.publish(desiredFromInventory(next));
      },
      status: (generation, specError, previous) =>
        emuvNodeStatus({ discovery, inventory: state.inventory, usage: latest, generation, specError, previous, now: new Date() }),
    });
    const sync = emuvNodeSync;
    onStarted('EmuvNode sync', () => sync.halt());
    // Read before the device plugin registers, so the kubelet's first device list already follows it.
    await sync.reconcile();
    sync.start();
  }

  const environment = (): AllocateEnvironment => ({
    existingDevNodes: existingDevNodes(config.devRoot),
    hostDevDir: config.hostDevDir,
    interposer: installed.install,
    stateDir: config.stateDir,
  });
  const lifecycle = new DevicePluginLifecycle({
    dir: config.devicePluginDir,
    socketName: DEVICE_PLUGIN_SOCKET,
    resourceName: RESOURCE_VGPU,
    options: PLUGIN_OPTIONS,
    handlers: createHandlers({
      state,
      environment,
      prepareHost: statsDirPreparer(config.stateDir),
      logger: log.child({ module: 'deviceplugin' }),
      onAllocate: (outcome) => metrics.allocations.inc({ outcome }),
    }),
    logger: log.child({ module: 'deviceplugin' }),
    onRegistered: () => metrics.registrations.inc(),
    onRestart: () => metrics.restarts.inc(),
  });

  // The metrics port is bound before the kubelet hears of us: a busy port then fails the start before the
  // device plugin has registered anything.
  let http: Awaited<ReturnType<typeof startHttpServer>> | null = null;
  if (config.metrics) {
    const addr = `${config.metrics.host.includes(':') ? `[${config.metrics.host}]` : config.metrics.host}:${config.metrics.port}`;
    try {
      http = await startHttpServer({
        host: config.metrics.host,
        port: config.metrics.port,
        registry: metrics.registry,
        ready: () => lifecycle.registered && (publisher?.healthy ?? true),
        json: { '/status': () => latest },
      });
    } catch (err) {
      throw new StartupError('metrics-addr', `--metrics-addr ${addr}: cannot listen: ${describeSystemError(err)}`, { cause: err });
    }
    const server = http;
    onStarted('http server', () => server.close());
    log.info('http listening', { port: http.port });
  }

  // The kubelet's directory must exist (a hostPath mount): without this check, binding the socket in a
  // missing directory fails with a message that names neither the directory nor the flag.
  const dpDir = statSync(config.devicePluginDir, { throwIfNoEntry: false });
  if (!dpDir?.isDirectory())
    throw new StartupError(
      'device-plugin-dir',
      `--device-plugin-dir ${config.devicePluginDir}: ${dpDir ? 'not a directory' : 'no such directory'}; ` +
        "it must be the kubelet's device-plugin directory (/var/lib/kubelet/device-plugins on the host)",
    );
  try {
    await lifecycle.start();
  } catch (err) {
    await lifecycle.stop(); // removes the socket if it was made
    throw new StartupError(
      'device-plugin-dir',
      `--device-plugin-dir ${config.devicePluginDir}: cannot serve ${DEVICE_PLUGIN_SOCKET}: ${describeSystemError(err)}`,
      { cause: err },
    );
  }
  onStarted('device plugin', () => lifecycle.stop());

  // Usage: stats files -> owners (PodResources) -> status document (/status, /metrics). On the shared
  // periodic loop: a pass waits for the one in flight, so a PodResources call that stalls (its deadline
  // is 2 s, the interval too) never piles up passes.
  const podResources =
    deps.podResources !== undefined ? deps.podResources : config.podResourcesSocket ? podResourcesClient(config.podResourcesSocket) : null;
  if (podResources) onStarted('PodResources client', () => podResources.close());
  const liveness = procLiveness(config.procRoot);
  let podResourcesWarned = false;
  let lastUsageError: unknown = null;
  const usagePass = async (): Promise<void> => {
    try {
      let owners = null;
      if (podResources) {
        try {
          owners = ownersByAllocId(await podResources.list());
          podResourcesWarned = false;
        } catch (err) {
          if (!podResourcesWarned) log.warn('pod resources unavailable; containers are shown without names', errFields(err));
          podResourcesWarned = true;
        }
      }
      const { containers, removed } = collectUsage({ stateDir: config.stateDir, owners, read: (p) => readStatsFile(p), liveness });
      for (const c of containers) if (c.error) metrics.statsErrors.inc();
      for (const allocId of removed) {
        metrics.staleStatsRemoved.inc();
        log.info('stats directory removed: its pod is gone', { allocId });
      }
      latest = buildStatus({
        node: config.nodeName || null,
        now: new Date(),
        inventory: state.inventory,
        health: (a) => state.health(a),
        containers,
      });
      lastUsageError = null;
    } catch (err) {
      lastUsageError = err;
      log.error('usage collection failed', errFields(err));
    }
  };
  const usage = new Periodic(usagePass, deps.usageIntervalMs ?? 2000);
  onStarted('usage loop', () => usage.halt());
  const refreshStatus = async (): Promise<StatusDocument> => {
    await usage.run();
    if (lastUsageError !== null || latest === null) throw lastUsageError ?? new Error('no usage collected yet');
    return latest;
  };
  await usage.run();
  usage.start();

  if (config.nodeStatus) {
    if (!deps.nodeApi) throw new Error('node status is on but no Kubernetes API was given');
    const p = new NodeStatusPublisher({
      nodeName: config.nodeName,
      api: deps.nodeApi,
      logger: log.child({ module: 'node-status' }),
      resyncMs: deps.nodeStatusResyncMs ?? 5000,
      onPatched: () => metrics.nodeStatusPatches.inc(),
      onError: () => metrics.nodeStatusErrors.inc(),
    });
    publisher = p;
    onStarted('node status publisher', () => p.halt());
    await p.publish(desiredFromInventory(state.inventory));
    p.start();
  }

  // Uninstall cleanup at SIGTERM needs the API (to tell an uninstall from a restart) and a DaemonSet that
  // exists now: a name of no DaemonSet would read as "uninstalled" at every restart and wipe the node.
  let uninstall: { api: UninstallApi; owner: DaemonSetRef } | null = null;
  if (config.ownerDaemonSet && !config.nodeStatus) {
    log.info('no uninstall cleanup: with --node-status=off nothing can tell an uninstall from a restart, so nothing is removed');
  } else if (config.ownerDaemonSet) {
    if (!deps.uninstallApi) throw new Error('--owner-daemonset is set but no Kubernetes API for it was given');
    const owner = config.ownerDaemonSet;
    const ownerName = `${owner.namespace}/${owner.name}`;
    const atStart = await decideOnStop(deps.uninstallApi, owner, deps.ownerCheckTimeoutMs ?? 5000);
    if (atStart.reason === 'daemonset-gone')
      log.error('--owner-daemonset names no DaemonSet: uninstall cleanup is off until the flag is fixed', { daemonSet: ownerName });
    else {
      uninstall = { api: deps.uninstallApi, owner };
      if (atStart.reason === 'api-error')
        log.warn('cannot read the owner DaemonSet now; it is asked again at SIGTERM', { daemonSet: ownerName, err: atStart.error });
    }
  }

  const stop = async () => {
    clearInterval(healthTimer);
    await usage.halt();
    emuvNodeSync?.stop();
    podResources?.close();
    publisher?.stop();
    await lifecycle.stop();
    await http?.close();
    deps.nvml?.close();
  };

  const terminate = async () => {
    if (uninstall) {
      const started = Date.now();
      const daemonSet = `${uninstall.owner.namespace}/${uninstall.owner.name}`;
      const decision = await decideOnStop(uninstall.api, uninstall.owner, deps.ownerCheckTimeoutMs ?? 5000);
      if (decision.uninstall) {
        log.info('emuv is being uninstalled: removing what the agent put on this node', { daemonSet, reason: decision.reason });
        // Nothing may re-publish what the steps remove: the loops stop, and a pass in flight finishes first.
        clearInterval(healthTimer);
        await usage.halt();
        await emuvNodeSync?.halt();
        await publisher?.halt();
        const outcomes = await runUninstallSteps(
          uninstallSteps({
            plugin: { withdraw: () => state.withdraw(), stop: () => lifecycle.stop() },
            flushMs: deps.uninstallFlushMs ?? 500,
            api: uninstall.api,
            nodeName: config.nodeName,
            interposerDir: config.interposerDir,
            stateDir: config.stateDir,
          }),
          { deadline: started + (deps.uninstallDeadlineMs ?? 20_000), logger: log.child({ module: 'uninstall' }) },
        );
        const failed = outcomes.filter((o) => o.outcome !== 'done').map((o) => o.step);
        if (failed.length > 0) log.warn('uninstall cleanup incomplete', { daemonSet, failed });
        else log.info('uninstall cleanup done', { daemonSet });
      } else if (decision.reason === 'daemonset-exists')
        log.info('owner DaemonSet exists (rolling update, drain or eviction): leaving the node as it is', { daemonSet });
      else log.warn('cannot tell whether emuv is being uninstalled: leaving the node as it is', { daemonSet, err: decision.error });
    }
    await stop();
  };

  return {
    lifecycle,
    state,
    metricsPort: http?.port ?? null,
    refreshStatus,
    stop,
    terminate,
  };
}

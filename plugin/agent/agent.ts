/**
 * The node agent, wired: discovery -> inventory -> device state -> { device plugin, node status,
 * metrics }. Composition only: each part is started by a function of its own (here, or in usage-loop.ts,
 * uninstall.ts, metrics/capacity.ts), and startAgent starts them in order, stopping what has started
 * when a later part fails. Collaborators that touch the world beyond the configured roots (NVML, the
 * Kubernetes API) are injected.
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
import type { PluginConfig } from '../config/plugin.ts';
import { CONTROL_DEVICE_NODES, type AllocateEnvironment } from '../deviceplugin/allocate.ts';
import { DeviceState } from '../deviceplugin/device-state.ts';
import { probeHealth } from '../deviceplugin/health.ts';
import { statsDirPreparer } from '../deviceplugin/host-prep.ts';
import { DevicePluginLifecycle } from '../deviceplugin/lifecycle.ts';
import { createHandlers, PLUGIN_OPTIONS } from '../deviceplugin/server.ts';
import { discoverNode } from '../discovery/discover.ts';
import type { Nvml } from '../discovery/nvml.ts';
import type { NodeDiscovery } from '../discovery/types.ts';
import { buildInventory, notOfferedReason, type Inventory } from '../inventory/inventory.ts';
import type { CapacityConfig } from '../inventory/capacity.ts';
import { setCapacityMetrics } from '../metrics/capacity.ts';
import { createAgentMetrics, Registry, type AgentMetrics } from '../metrics/definitions.ts';
import { podResourcesClient, type PodResourcesSource } from '../usage/pod-resources.ts';
import type { StatusDocument } from '../usage/status.ts';
import { installInterposer } from './interposer-install.ts';
import { applyNodeConfig, EmuvNodeSync, emuvNodeStatus, type EmuvNodeApi } from './emuv-node.ts';
import { desiredFromInventory, NodeStatusPublisher, type NodeApi } from './node-status.ts';
import { armUninstall, uninstallOnStop, type UninstallApi } from './uninstall.ts';
import { startUsageLoop, type UsageLoop } from './usage-loop.ts';
import { startDra, type DraPart } from './dra.ts';
import type { Allocation } from '../../common/contracts/dra.ts';
import type { SliceApi } from '../dra/slice-sync.ts';
import type { ClaimApi } from '../dra/driver.ts';

export interface AgentDeps {
  logger: Logger;
  registry?: Registry;
  nvml: Nvml | null;
  /** Required when config.nodeStatus is on. */
  nodeApi?: NodeApi;
  /** This node's EmuvNode (spec applied live, status written); optional even with node status on. */
  emuvNodeApi?: EmuvNodeApi;
  /** ResourceSlices and ResourceClaims; required with --dra=on. */
  sliceApi?: SliceApi;
  claimApi?: ClaimApi;
  /** How often the ResourceSlice is re-listed besides its watch. When unspecified, 10000 ms. */
  sliceResyncMs?: number;
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
  /** The DRA part; null with --dra=off. */
  dra: DraPart | null;
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

/**
 * What has been started so far, stopped in reverse order: at stop(), and when a later start-up step
 * fails, so that a half-started agent stays neither registered with the kubelet nor alive.
 */
class StartedParts {
  readonly #parts: { what: string; stop: () => unknown }[] = [];
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  add<T>(what: string, part: T, stop: (part: T) => unknown): T {
    this.#parts.push({ what, stop: () => stop(part) });
    return part;
  }

  /** Stops every part, last started first; a part that fails to stop does not keep the others running. */
  async stopAll(): Promise<void> {
    for (const p of this.#parts.splice(0).reverse()) {
      try {
        await p.stop();
      } catch (err) {
        this.#log.warn('stopping a part of the agent failed', { part: p.what, ...errFields(err) });
      }
    }
  }
}

export async function startAgent(config: PluginConfig, deps: AgentDeps): Promise<AgentHandle> {
  const parts = new StartedParts(deps.logger);
  try {
    return await startParts(config, deps, parts);
  } catch (err) {
    await parts.stopAll();
    deps.nvml?.close();
    throw err;
  }
}

async function startParts(config: PluginConfig, deps: AgentDeps, parts: StartedParts): Promise<AgentHandle> {
  const log = deps.logger;
  let usage: UsageLoop | null = null;
  let publisher: NodeStatusPublisher | null = null;
  let dra: DraPart | null = null;
  /** The node's allocation path: its EmuvNode's, else the flag's. */
  let allocation: Allocation = config.dra.allocation;
  const metrics = createAgentMetrics(deps.registry ?? new Registry(), () => usage?.latest() ?? null);

  const discovery = discover(config, deps.nvml, log);
  const capacity = (cfg: CapacityConfig, source: string) => offer(discovery, cfg, source, metrics, log);
  const state = new DeviceState(capacity(config.capacity, '--vram-reserve'));
  const installed = install(config, log);
  const health = parts.add('health poll', startHealthPoll(config, state, deps, metrics, log), (h) => h.stop());

  // EmuvNode.spec (from the operator's policies) laid over the flags, applied live; read before the device
  // plugin registers, so the kubelet's first device list already follows it.
  const emuvNode =
    config.nodeStatus && deps.emuvNodeApi
      ? parts.add(
          'EmuvNode sync',
          await startEmuvNodeSync(config, deps.emuvNodeApi, deps, {
            discovery,
            state,
            latest: () => usage?.latest() ?? null,
            dra: () => dra,
            apply: (spec) => {
              const wanted = spec?.allocation ?? config.dra.allocation;
              // Refused before anything is applied: the node keeps the configuration in effect, and EmuvNode says why.
              if (wanted === 'DRA' && !config.dra.enabled)
                throw new Error('allocation DRA: this agent runs with --dra=off (install the chart with dra.enabled=true)');
              allocation = wanted;
              dra?.setAllocation(wanted);
              const next = capacity(
                spec ? applyNodeConfig(config.capacity, spec) : config.capacity,
                spec ? `EmuvNode ${config.nodeName} spec.vramReservePerGpu` : '--vram-reserve',
              );
              state.setInventory(next);
            },
            log,
          }),
          (s) => s.stop(),
        )
      : null;

  const lifecycle = devicePlugin(config, state, installed, metrics, log);
  // The metrics port is bound before the kubelet hears of us: a busy port then fails the start before the
  // device plugin has registered anything.
  const http = config.metrics
    ? parts.add(
        'http server',
        await startHttp(config.metrics, metrics, {
          // With DRA: the kubelet took the DRA plugin, and the node's ResourceSlice is what it should be.
          ready: () =>
            lifecycle.registered &&
            (publisher?.healthy ?? true) &&
            (dra === null || (dra.plugin.registered && dra.slices.lastError === null)),
          status: () => usage?.latest() ?? null,
          log,
        }),
        (h) => h.close(),
      )
    : null;
  parts.add('device plugin', await startDevicePlugin(config, lifecycle), (l) => l.stop());
  if (config.dra.enabled) {
    if (!deps.sliceApi || !deps.claimApi) throw new Error('--dra=on but no Kubernetes API for ResourceSlices and ResourceClaims was given');
    dra = parts.add(
      'DRA',
      await startDra(
        { ...config, dra: { ...config.dra, allocation } },
        {
          sliceApi: deps.sliceApi,
          claimApi: deps.claimApi,
          state,
          discovery,
          environment: () => allocateEnvironment(config, installed),
          logger: log,
          sliceResyncMs: deps.sliceResyncMs,
          onClaimsChanged: () => void usage?.refresh().catch(() => {}),
        },
      ),
      (d) => d.stop(),
    );
  }
  // Node status follows the device state: its inventory, and whether the device plugin or DRA offers it.
  state.subscribe(() => void publisher?.publish(desiredFromInventory(state.inventory, state.devicePluginOffered)).catch(() => {}));

  usage = parts.add(
    'usage loop',
    await startUsageLoop({
      stateDir: config.stateDir,
      procRoot: config.procRoot,
      nodeName: config.nodeName || null,
      podResources:
        deps.podResources !== undefined
          ? deps.podResources
          : config.podResourcesSocket
            ? podResourcesClient(config.podResourcesSocket)
            : null,
      state,
      metrics,
      log,
      intervalMs: deps.usageIntervalMs ?? 2000,
    }),
    (u) => u.stop(),
  );

  if (config.nodeStatus) {
    if (!deps.nodeApi) throw new Error('node status is on but no Kubernetes API was given');
    publisher = parts.add('node status publisher', await startPublisher(config, deps.nodeApi, state, deps, metrics, log), (p) => p.stop());
  }

  const uninstall = await armUninstall({
    owner: config.ownerDaemonSet,
    nodeStatus: config.nodeStatus,
    api: deps.uninstallApi,
    timeoutMs: deps.ownerCheckTimeoutMs ?? 5000,
    logger: log,
  });

  const stop = async () => {
    await parts.stopAll();
    deps.nvml?.close();
  };
  const loops = { health, emuvNode, publisher, usage, dra };
  return {
    lifecycle,
    state,
    dra,
    metricsPort: http?.port ?? null,
    refreshStatus: () => loops.usage.refresh(),
    stop,
    terminate: async () => {
      if (uninstall)
        await uninstallOnStop(uninstall, {
          haltLoops: async () => {
            await loops.health.halt();
            await loops.usage.halt();
            await loops.emuvNode?.halt();
            await loops.publisher?.halt();
            await loops.dra?.slices.halt();
          },
          plugin: { withdraw: () => state.withdraw(), stop: () => lifecycle.stop() },
          dra: loops.dra,
          nodeName: config.nodeName,
          interposerDir: config.interposerDir,
          stateDir: config.stateDir,
          ownerCheckTimeoutMs: deps.ownerCheckTimeoutMs ?? 5000,
          deadlineMs: deps.uninstallDeadlineMs ?? 20_000,
          flushMs: deps.uninstallFlushMs ?? 500,
          logger: log,
        });
      await stop();
    },
  };
}

// ---- the parts ----

function discover(config: PluginConfig, nvml: Nvml | null, log: Logger): NodeDiscovery {
  const discovery = discoverNode({ sysRoot: config.sysRoot, procRoot: config.procRoot, nvml, gpuMemory: config.gpuMemory });
  for (const p of discovery.problems) log.warn('discovery problem', { subject: p.subject, problem: p.message });
  for (const g of discovery.gpus) {
    if (g.offered)
      log.info('gpu offered', { gpu: g.pci.address, name: g.name, uuid: g.uuid, vramBytes: g.vramBytes, numa: g.pci.numaNode });
    else log.warn('gpu not offered', { gpu: g.pci.address, reason: g.reason });
  }
  return discovery;
}

/**
 * The inventory a configuration gives, with the log and metrics saying so. `source` names where the VRAM
 * reserve came from: a capacity of 0 must say why, and which setting to change.
 */
function offer(discovery: NodeDiscovery, cfg: CapacityConfig, source: string, metrics: AgentMetrics, log: Logger): Inventory {
  const inventory = buildInventory(discovery, cfg);
  for (const g of discovery.gpus) {
    if (!g.offered) continue; // logged once at discovery, with its own reason
    const reason = notOfferedReason(g, cfg);
    if (reason) log.warn('gpu not offered', { gpu: g.pci.address, reason: `${reason} (${source})` });
  }
  setCapacityMetrics(metrics, inventory, discovery.gpus.length);
  log.info('capacity', {
    vramVirtualBytes: inventory.vramVirtualBytes,
    vgpu: inventory.vgpuCount,
    hostBudgetBytes: inventory.hostBudgetBytes,
  });
  return inventory;
}

function install(config: PluginConfig, log: Logger): ReturnType<typeof installInterposer> {
  const installed = installInterposer({
    sourceDir: config.interposerSource ?? defaultInterposerSource(),
    targetDir: config.interposerDir,
    driverLibDir: config.driverLibDir,
  });
  if (installed.install) log.info('interposer installed', { dir: config.interposerDir });
  else log.warn('interposer not installed', { reason: installed.reason });
  return installed;
}

/** GPU health, probed now and every 500 ms on the periodic loop; changes reach ListAndWatch at once. */
function startHealthPoll(config: PluginConfig, state: DeviceState, deps: AgentDeps, metrics: AgentMetrics, log: Logger): Periodic {
  const probe = async () => {
    const health = probeHealth(state.inventory, { sysRoot: config.sysRoot, devRoot: config.devRoot }, deps.nvml);
    if (state.setHealth(health))
      for (const [gpu, h] of health) log.warn(h.healthy ? 'gpu healthy' : 'gpu unhealthy', { gpu, reason: h.reason });
    for (const [gpu, h] of health) metrics.gpuHealthy.set({ gpu }, h.healthy ? 1 : 0);
  };
  const loop = new Periodic(probe, deps.healthPollMs ?? 500);
  void loop.run();
  loop.start();
  return loop;
}

async function startEmuvNodeSync(
  config: PluginConfig,
  api: EmuvNodeApi,
  deps: AgentDeps,
  o: {
    discovery: NodeDiscovery;
    state: DeviceState;
    latest: () => StatusDocument | null;
    apply: (spec: Parameters<typeof applyNodeConfig>[1] | null) => void;
    /** The DRA part once started (null before, and with --dra=off). */
    dra: () => DraPart | null;
    log: Logger;
  },
): Promise<EmuvNodeSync> {
  const sync = new EmuvNodeSync({
    nodeName: config.nodeName,
    api,
    logger: o.log.child({ module: 'emuv-node' }),
    resyncMs: deps.nodeStatusResyncMs ?? 5000,
    onConfig: o.apply,
    status: (generation, specError, previous) =>
      emuvNodeStatus({
        discovery: o.discovery,
        inventory: o.state.inventory,
        usage: o.latest(),
        generation,
        specError,
        previous,
        now: new Date(),
        devicePlugin: o.state.devicePluginOffered,
        sliceError: o.dra()?.slices.lastError ?? null,
      }),
  });
  try {
    await sync.run();
  } catch (err) {
    sync.stop();
    throw err;
  }
  sync.start();
  return sync;
}

/** What a container is given is probed from the host just before each Allocate or NodePrepareResources. */
function allocateEnvironment(config: PluginConfig, installed: ReturnType<typeof installInterposer>): AllocateEnvironment {
  return {
    existingDevNodes: existingDevNodes(config.devRoot),
    hostDevDir: config.hostDevDir,
    interposer: installed.install,
    stateDir: config.stateDir,
  };
}

function devicePlugin(
  config: PluginConfig,
  state: DeviceState,
  installed: ReturnType<typeof installInterposer>,
  metrics: AgentMetrics,
  log: Logger,
): DevicePluginLifecycle {
  const environment = () => allocateEnvironment(config, installed);
  return new DevicePluginLifecycle({
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
}

async function startHttp(
  address: { host: string; port: number },
  metrics: AgentMetrics,
  o: { ready: () => boolean; status: () => StatusDocument | null; log: Logger },
): Promise<Awaited<ReturnType<typeof startHttpServer>>> {
  const addr = `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
  let http;
  try {
    http = await startHttpServer({
      host: address.host,
      port: address.port,
      registry: metrics.registry,
      ready: o.ready,
      json: { '/status': o.status },
    });
  } catch (err) {
    throw new StartupError('metrics-addr', `--metrics-addr ${addr}: cannot listen: ${describeSystemError(err)}`, { cause: err });
  }
  o.log.info('http listening', { port: http.port });
  return http;
}

async function startDevicePlugin(config: PluginConfig, lifecycle: DevicePluginLifecycle): Promise<DevicePluginLifecycle> {
  // The kubelet's directory must exist (a hostPath mount): without this check, binding the socket in a
  // missing directory fails with a message that names neither the directory nor the flag.
  const dir = statSync(config.devicePluginDir, { throwIfNoEntry: false });
  if (!dir?.isDirectory())
    throw new StartupError(
      'device-plugin-dir',
      `--device-plugin-dir ${config.devicePluginDir}: ${dir ? 'not a directory' : 'no such directory'}; ` +
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
  return lifecycle;
}

async function startPublisher(
  config: PluginConfig,
  api: NodeApi,
  state: DeviceState,
  deps: AgentDeps,
  metrics: AgentMetrics,
  log: Logger,
): Promise<NodeStatusPublisher> {
  const p = new NodeStatusPublisher({
    nodeName: config.nodeName,
    api,
    logger: log.child({ module: 'node-status' }),
    resyncMs: deps.nodeStatusResyncMs ?? 5000,
    onPatched: () => metrics.nodeStatusPatches.inc(),
    onError: () => metrics.nodeStatusErrors.inc(),
  });
  try {
    await p.publish(desiredFromInventory(state.inventory, state.devicePluginOffered));
  } catch (err) {
    p.stop();
    throw err;
  }
  p.start();
  return p;
}

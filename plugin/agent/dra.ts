/**
 * The agent's DRA part, wired: the kubelet plugin (registration, DRAPlugin, resource health) over emuv's
 * driver (prepare/unprepare, CDI specs, checkpoint), and the ResourceSlice sync over the device state.
 *
 * With --dra=on the kubelet plugin is always served, whichever path the node is on: claims prepared while
 * the node was on DRA are unprepared through it after a switch back. Slices are published only while the
 * node's allocation is DRA; the device plugin offers nothing then (DeviceState.setDevicePluginOffered), so
 * the same bytes are never offered twice.
 */
import { join } from 'node:path';
import { DRA_DRIVER, type Allocation } from '../../common/contracts/dra.ts';
import { describeSystemError, StartupError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import type { PluginConfig } from '../config/plugin.ts';
import type { AllocateEnvironment } from '../deviceplugin/allocate.ts';
import type { DeviceState } from '../deviceplugin/device-state.ts';
import { statsDirPreparer } from '../deviceplugin/host-prep.ts';
import type { NodeDiscovery } from '../discovery/types.ts';
import { ClaimCheckpoint } from '../dra/checkpoint.ts';
import type { PreparedClaim } from '../dra/claim.ts';
import { EmuvDraDriver, type ClaimApi } from '../dra/driver.ts';
import { DraKubeletPlugin, type HealthSource } from '../dra/kubelet-plugin.ts';
import { deviceName, desiredDevices } from '../dra/slice.ts';
import { SliceSync, type SliceApi } from '../dra/slice-sync.ts';

export interface DraDeps {
  sliceApi: SliceApi;
  claimApi: ClaimApi;
  state: DeviceState;
  discovery: NodeDiscovery;
  environment: () => AllocateEnvironment;
  logger: Logger;
  sliceResyncMs?: number;
  /** After claims were prepared or unprepared. */
  onClaimsChanged?: () => void;
}

export interface DraPart {
  readonly allocation: Allocation;
  /** Switches the node's path: DRA publishes the slice and withdraws the device plugin's offer, and back. */
  setAllocation(allocation: Allocation): void;
  prepared(): PreparedClaim[];
  readonly plugin: DraKubeletPlugin;
  readonly slices: SliceSync;
  /** Uninstall: stop publishing and delete the slice; remove every claim's CDI spec and stats directory. */
  withdraw(): Promise<{ slicesRemoved: boolean; claimsRemoved: number }>;
  stop(): Promise<void>;
}

/** The DRA checkpoint: a file in the state directory, whose subdirectories are all stats directories (the usage loop reads each). */
export const checkpointFile = (stateDir: string) => join(stateDir, 'dra-checkpoint.json');

/** Each offered GPU's health from the health poll, as the kubelet's health stream names devices (pool = node). */
function healthSource(state: DeviceState, pool: string): HealthSource {
  return {
    current: () =>
      state.inventory.gpus.map((g) => {
        const h = state.health(g.address);
        return { poolName: pool, deviceName: deviceName(g.address), healthy: h.healthy, message: h.reason ?? '' };
      }),
    subscribe: (listener) => state.subscribe(listener),
  };
}

export async function startDra(config: PluginConfig, deps: DraDeps): Promise<DraPart> {
  const log = deps.logger.child({ module: 'dra' });
  const { state } = deps;
  let allocation: Allocation = config.dra.allocation;
  let withdrawn = false;
  const prepareStatsDir = statsDirPreparer(config.stateDir);
  const driver = new EmuvDraDriver({
    nodeName: config.nodeName,
    inventory: () => state.inventory,
    environment: deps.environment,
    cdiDir: config.dra.cdiDir,
    stateDir: config.stateDir,
    checkpoint: new ClaimCheckpoint(checkpointFile(config.stateDir), log),
    api: deps.claimApi,
    prepareStatsDir: (allocId) => prepareStatsDir({ allocId }),
    logger: log,
    onChange: deps.onClaimsChanged,
  });
  const slices = new SliceSync({
    nodeName: config.nodeName,
    api: deps.sliceApi,
    logger: log.child({ module: 'resourceslice' }),
    resyncMs: deps.sliceResyncMs,
    desired: () => {
      if (withdrawn || allocation !== 'DRA') return null;
      const unhealthy = new Set(state.inventory.gpus.filter((g) => !state.health(g.address).healthy).map((g) => g.address));
      return desiredDevices({ nodeName: config.nodeName, inventory: state.inventory, discovery: deps.discovery, unhealthy });
    },
  });
  const plugin = new DraKubeletPlugin({
    driverName: DRA_DRIVER,
    pluginDir: join(config.dra.kubeletPluginsDir, DRA_DRIVER),
    registryDir: config.dra.kubeletRegistryDir,
    driver,
    health: healthSource(state, config.nodeName),
    logger: log.child({ module: 'kubelet-plugin' }),
  });
  try {
    await plugin.start();
  } catch (err) {
    await plugin.stop();
    throw new StartupError(
      'kubelet-plugins-dir',
      `--kubelet-plugins-dir ${config.dra.kubeletPluginsDir} / --kubelet-registry-dir ${config.dra.kubeletRegistryDir}: ` +
        `cannot serve the DRA plugin: ${describeSystemError(err)}`,
      { cause: err },
    );
  }
  state.setDevicePluginOffered(allocation !== 'DRA');
  // Inventory and health changes reach the slice at once, not only at the next resync.
  const unsubscribe = state.subscribe(() => void slices.run().catch(() => {}));
  await slices.run().catch(() => {}); // a failure is logged and retried on the timer
  slices.start();
  log.info('DRA serving', { allocation, driver: DRA_DRIVER, endpoint: plugin.endpoint, preparedClaims: driver.prepared().length });

  return {
    get allocation() {
      return allocation;
    },
    setAllocation(next) {
      if (next === allocation) return;
      allocation = next;
      log.info('allocation path changed', { allocation });
      state.setDevicePluginOffered(next !== 'DRA');
      void slices.run().catch(() => {});
    },
    prepared: () => driver.prepared(),
    plugin,
    slices,
    async withdraw() {
      withdrawn = true;
      await slices.halt();
      let slicesRemoved = true;
      try {
        await slices.removeAll();
      } catch (err) {
        slicesRemoved = false;
        log.warn('ResourceSlice not removed at uninstall; the kubelet removes it 30 s after the plugin goes', {
          reason: (err as Error).message,
        });
      }
      const claimsRemoved = await driver.removeAll();
      return { slicesRemoved, claimsRemoved };
    },
    async stop() {
      unsubscribe();
      slices.stop();
      await slices.halt();
      await plugin.stop();
    },
  };
}

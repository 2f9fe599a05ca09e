/**
 * The agent's side of EmuvNode: read this node's spec (written by the operator), apply it live, and
 * write the status (GPUs, capacity, committed and used memory, spill, a Ready condition).
 * Level-triggered like the node status publisher: each pass reads the object and acts on what it
 * finds. A spec the agent cannot parse keeps the configuration in effect and says why in status.
 */
import { DRA_DRIVER } from '../../common/contracts/dra.ts';
import {
  humanBytes,
  parseNodeConfig,
  type AgentNodeConfig,
  type NodeSummary,
  type SpillBackend,
} from '../../common/contracts/emuv-node.ts';
import type { SpillBackendMode } from '../../common/contracts/interposer.ts';
import type { Logger } from '../../common/log.ts';
import { errFields } from '../../common/log.ts';
import { Periodic } from '../../common/periodic.ts';
import type { NodeDiscovery } from '../discovery/types.ts';
import type { CapacityConfig } from '../inventory/capacity.ts';
import type { Inventory } from '../inventory/inventory.ts';
import type { StatusDocument } from '../usage/status.ts';

export interface EmuvNodeView {
  metadata?: { generation?: number };
  spec?: unknown;
  status?: { conditions?: { type: string; status: string; reason: string; message: string; lastTransitionTime: string }[] };
}

/** The Kubernetes calls the sync needs; implemented over @kubernetes/client-node in kube-node-api.ts. */
export interface EmuvNodeApi {
  /** The EmuvNode, or null when it does not exist (yet). */
  get(name: string): Promise<EmuvNodeView | null>;
  /** Merge-patches the status subresource. */
  patchStatus(name: string, status: Record<string, unknown>): Promise<void>;
}

/** EmuvNode.spec.spillBackend (the CRD's spelling) as the interposer contract spells it. */
export const SPILL_BACKEND_MODE: Readonly<Record<SpillBackend, SpillBackendMode>> = {
  Auto: 'auto',
  Pinned: 'pinned',
  Managed: 'managed',
};

/** The flags' configuration with EmuvNode.spec laid over it. */
export function applyNodeConfig(base: CapacityConfig, spec: AgentNodeConfig): CapacityConfig {
  return {
    ...base,
    hostBudget: spec.hostSpill,
    reserveBytes: spec.vramReserveBytes,
    slotsPerGpu: spec.slotsPerGpu,
    vramMode: spec.vramMode,
    spillBackend: SPILL_BACKEND_MODE[spec.spillBackend],
  };
}

/** PCIe generation from the per-lane rate. */
export function pcieGeneration(gtPerSec: number | null): number | undefined {
  const gens: [number, number][] = [
    [2.5, 1],
    [5, 2],
    [8, 3],
    [16, 4],
    [32, 5],
    [64, 6],
    [128, 7],
  ];
  return gens.find(([gt]) => gt === gtPerSec)?.[1];
}

export interface StatusInputs {
  discovery: NodeDiscovery;
  inventory: Inventory;
  usage: StatusDocument | null;
  generation: number | undefined;
  /** null when the spec in effect was applied; else why it was not. */
  specError: string | null;
  /** Whether the device plugin offers the node's memory (true), or DRA does (false). Default true. */
  devicePlugin?: boolean;
  /** On DRA: why the node's ResourceSlice is not what it should be; null when it is. */
  sliceError?: string | null;
  previous: EmuvNodeView['status'];
  now: Date;
}

/** The status the agent writes (pure; sizes as byte strings, which the CRD's size format accepts). */
export function emuvNodeStatus(i: StatusInputs): Record<string, unknown> {
  const offered = new Set(i.inventory.gpus.map((g) => g.address));
  const gpus = i.discovery.gpus
    .filter((g) => offered.has(g.pci.address))
    .map((g, index) => {
      const gen = pcieGeneration(g.pci.link.gtPerSec);
      return {
        index,
        ...(g.uuid ? { uuid: g.uuid } : {}),
        ...(g.name ? { model: g.name } : {}),
        pciAddress: g.pci.address,
        numaNode: g.pci.numaNode,
        vram: String(g.vramBytes ?? 0),
        ...(gen || g.pci.link.width
          ? { link: { ...(gen ? { generation: gen } : {}), ...(g.pci.link.width ? { width: g.pci.link.width } : {}) } }
          : {}),
      };
    });
  const usage = i.usage?.capacity;
  const sliceError = i.devicePlugin === false ? (i.sliceError ?? null) : null;
  const ready = i.specError === null && sliceError === null;
  const reason = i.specError !== null ? 'InvalidSpec' : sliceError !== null ? 'ResourceSliceNotPublished' : 'SpecApplied';
  const published =
    i.devicePlugin === false
      ? `publishing ${i.inventory.vramVirtualBytes} bytes over DRA: ${i.inventory.gpus.length} device(s) of ${DRA_DRIVER} in this node's ResourceSlice`
      : `publishing ${i.inventory.vramVirtualBytes} bytes of emuv.io/vram-virtual and ${i.inventory.vgpuCount} slots`;
  const message = i.specError ?? (sliceError !== null ? `ResourceSlice not published: ${sliceError}` : published);
  const prev = i.previous?.conditions?.find((c) => c.type === 'Ready');
  const status = ready ? 'True' : 'False';
  const committed = usage?.committedBytes ?? 0;
  const used = (i.usage?.containers ?? []).reduce((a, c) => a + c.vramUsedBytes + c.hostUsedBytes, 0);
  const spillInUse = usage?.hostUsedBytes ?? 0;
  const summary: NodeSummary = {
    vram: humanBytes(i.inventory.usableVramBytes),
    virtual: humanBytes(i.inventory.vramVirtualBytes),
    committed: humanBytes(committed),
    used: humanBytes(used),
    spillInUse: humanBytes(spillInUse),
    spillBudget: humanBytes(i.inventory.hostBudgetBytes),
  };
  return {
    ...(i.generation !== undefined ? { observedGeneration: i.generation } : {}),
    gpuCount: gpus.length,
    gpus,
    capacity: {
      vram: String(i.inventory.usableVramBytes),
      spillBudget: String(i.inventory.hostBudgetBytes),
      virtual: String(i.inventory.vramVirtualBytes),
      slots: i.inventory.vgpuCount,
    },
    committed: String(committed),
    used: String(used),
    spillInUse: String(spillInUse),
    summary,
    conditions: [
      {
        type: 'Ready',
        status,
        ...(i.generation !== undefined ? { observedGeneration: i.generation } : {}),
        // The transition time moves only when the status does.
        lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : i.now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
        reason,
        message,
      },
    ],
  };
}

export interface EmuvNodeSyncOptions {
  nodeName: string;
  api: EmuvNodeApi;
  logger: Logger;
  /**
   * Called when the effective configuration changes (the agent rebuilds its inventory). Throws when the agent
   * cannot apply the spec; the status then says why, and the configuration in effect stays.
   */
  onConfig: (spec: AgentNodeConfig | null) => void;
  /** Builds the status from the agent's current state. */
  status: (generation: number | undefined, specError: string | null, previous: EmuvNodeView['status']) => Record<string, unknown>;
  /** When unspecified, 5000 ms. */
  resyncMs?: number;
}

/** The loop (start, stop, halt; run = one pass now) is common/periodic.ts's; this class is the pass. */
export class EmuvNodeSync extends Periodic {
  readonly #o: EmuvNodeSyncOptions;
  #applied: string | null = null; // JSON of the spec in effect ("" = none: flags only)
  #lastStatus = '';

  constructor(o: EmuvNodeSyncOptions) {
    super(() => this.#reconcile(), o.resyncMs ?? 5000);
    this.#o = o;
  }

  async #reconcile(): Promise<void> {
    const { api, nodeName, logger } = this.#o;
    try {
      const obj = await api.get(nodeName);
      if (!obj) {
        // No EmuvNode (no operator, or not created yet): the flags are the configuration.
        if (this.#applied !== '') {
          this.#applied = '';
          this.#o.onConfig(null);
        }
        return;
      }
      let specError: string | null = null;
      try {
        const parsed = parseNodeConfig(obj.spec);
        const key = JSON.stringify(parsed);
        if (key !== this.#applied) {
          // onConfig may refuse a spec this agent cannot serve (allocation DRA with --dra=off): not applied then.
          this.#o.onConfig(parsed);
          this.#applied = key;
          logger.info('EmuvNode spec applied', { node: nodeName, generation: obj.metadata?.generation });
        }
      } catch (err) {
        specError = `spec not applied, keeping the configuration in effect: ${(err as Error).message}`;
        logger.warn('EmuvNode spec rejected', { node: nodeName, ...errFields(err) });
      }
      const status = this.#o.status(obj.metadata?.generation, specError, obj.status);
      const key = JSON.stringify(status);
      if (key !== this.#lastStatus || JSON.stringify(obj.status?.conditions) !== JSON.stringify(status.conditions)) {
        await api.patchStatus(nodeName, status);
        this.#lastStatus = key;
      }
    } catch (err) {
      logger.warn('EmuvNode sync failed; will retry', { node: nodeName, ...errFields(err) });
    }
  }
}

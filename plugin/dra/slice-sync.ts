/**
 * Keeps this node's ResourceSlice what the inventory says, level-triggered: each pass lists the driver's
 * slices for the node and makes them match (delete obsolete ones first, then update or create), so a slice
 * the kubelet wiped (it deletes every node-local slice when it starts, and a driver's slices 30 s after the
 * driver deregistered), someone edited, or an earlier pass failed to write is put back by the next pass.
 * Passes run on a timer, at once on every watch event for the node's slices, and whenever the inventory or
 * the node's allocation path changes.
 *
 * One pool, named after the node, in one slice. Every write that changes the devices bumps the pool's
 * generation (consumers use only the slices of the highest generation); the generation only grows while the
 * agent runs, starting above the highest one found.
 */
import type { Logger } from '../../common/log.ts';
import { errFields } from '../../common/log.ts';
import { Periodic } from '../../common/periodic.ts';
import { DRA_DRIVER } from '../../common/contracts/dra.ts';
import { droppedFields, normalizeDevices, sliceSpec, type SliceDevice } from './slice.ts';

export interface SliceView {
  metadata: { name: string; resourceVersion?: string };
  spec?: { pool?: { generation?: number; resourceSliceCount?: number }; devices?: unknown[] };
}

export interface SliceApi {
  /** The driver's slices of one node (field selectors spec.nodeName and spec.driver). */
  listSlices(nodeName: string, driver: string): Promise<SliceView[]>;
  createSlice(body: object): Promise<SliceView>;
  replaceSlice(name: string, body: object): Promise<SliceView>;
  /** Deletes one slice; a slice already gone is not an error. */
  deleteSlice(name: string): Promise<void>;
  nodeUid(nodeName: string): Promise<string>;
  /**
   * Calls onEvent on every change to the node's slices of the driver, until the returned function is called;
   * re-establishes itself when the apiserver ends the watch. Optional: without it, the timer alone resyncs.
   */
  watchSlices?(nodeName: string, driver: string, onEvent: () => void): () => void;
}

export interface SliceSyncOptions {
  nodeName: string;
  api: SliceApi;
  /** The devices to publish; null publishes nothing (the node serves the device plugin, or emuv is uninstalling). */
  desired: () => SliceDevice[] | null;
  logger: Logger;
  resyncMs?: number;
  /** After each pass: whether the slice matches, and why not (EmuvNode conditions, /readyz). */
  onResult?: (r: { ok: boolean; message: string | null }) => void;
}

export class SliceSync extends Periodic {
  readonly #o: SliceSyncOptions;
  #generation = 0;
  #nodeUid: string | null = null;
  #unwatch: (() => void) | null = null;
  /**
   * The devices last written when the apiserver dropped shared capacity (DRAConsumableCapacity off): writing
   * them again would be dropped again, and each write's watch event would start the next pass at once. Such a
   * pass fails without writing until the devices change or the resync timer comes round.
   */
  #droppedFor: string | null = null;
  #sinceDropped = 0;
  /** Set after each pass. */
  lastError: string | null = null;

  readonly #resyncMs: number;

  constructor(o: SliceSyncOptions, resyncMs = o.resyncMs ?? 10_000) {
    super(() => this.#pass(), resyncMs);
    this.#o = o;
    this.#resyncMs = resyncMs;
  }

  override start(): void {
    super.start();
    this.#unwatch ??= this.#o.api.watchSlices?.(this.#o.nodeName, DRA_DRIVER, () => void this.run().catch(() => {})) ?? null;
  }

  override stop(): void {
    super.stop();
    this.#unwatch?.();
    this.#unwatch = null;
  }

  /** Deletes the node's slices of the driver, whatever desired() says (uninstall; call after halt()). */
  async removeAll(): Promise<number> {
    const slices = await this.#o.api.listSlices(this.#o.nodeName, DRA_DRIVER);
    for (const s of slices) await this.#o.api.deleteSlice(s.metadata.name);
    return slices.length;
  }

  async #pass(): Promise<void> {
    try {
      await this.#reconcile();
      this.lastError = null;
      this.#o.onResult?.({ ok: true, message: null });
    } catch (err) {
      this.lastError = (err as Error).message;
      this.#o.logger.warn('ResourceSlice sync failed; retrying', errFields(err));
      this.#o.onResult?.({ ok: false, message: this.lastError });
      throw err;
    }
  }

  async #reconcile(): Promise<void> {
    const { api, nodeName, logger } = this.#o;
    const desired = this.#o.desired();
    const slices = (await api.listSlices(nodeName, DRA_DRIVER)).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    for (const s of slices) this.#generation = Math.max(this.#generation, s.spec?.pool?.generation ?? 0);
    if (desired === null) {
      for (const s of slices) await api.deleteSlice(s.metadata.name);
      if (slices.length > 0) logger.info('ResourceSlices removed', { slices: slices.map((s) => s.metadata.name) });
      return;
    }
    // Obsolete slices first: consumers must never see two complete pools at once.
    const [keep, ...extra] = slices;
    for (const s of extra) await api.deleteSlice(s.metadata.name);
    const upToDate =
      keep !== undefined &&
      extra.length === 0 &&
      keep.spec?.pool?.resourceSliceCount === 1 &&
      normalizeDevices(keep.spec?.devices) === normalizeDevices(desired);
    if (upToDate) return;
    const wanted = normalizeDevices(desired);
    if (this.#droppedFor === wanted && keep !== undefined && Date.now() - this.#sinceDropped < this.#resyncMs / 2)
      throw new Error(droppedFields(desired, keep.spec?.devices) ?? 'the apiserver dropped fields of the ResourceSlice');
    this.#generation += 1;
    const body = await this.#object(desired, keep);
    const stored = keep ? await api.replaceSlice(keep.metadata.name, body) : await api.createSlice(body);
    logger.info(keep ? 'ResourceSlice updated' : 'ResourceSlice created', {
      slice: stored.metadata.name,
      generation: this.#generation,
      devices: desired.map((d) => d.name),
    });
    const dropped = droppedFields(desired, stored.spec?.devices);
    if (dropped && this.#droppedFor === null) logger.error('ResourceSlice published without shared capacity', { reason: dropped });
    this.#droppedFor = dropped ? wanted : null;
    this.#sinceDropped = Date.now();
    if (dropped) throw new Error(dropped);
  }

  async #object(devices: SliceDevice[], existing: SliceView | undefined): Promise<object> {
    const { nodeName, api } = this.#o;
    this.#nodeUid ??= await api.nodeUid(nodeName);
    return {
      apiVersion: 'resource.k8s.io/v1',
      kind: 'ResourceSlice',
      metadata: {
        ...(existing
          ? { name: existing.metadata.name, resourceVersion: existing.metadata.resourceVersion }
          : { generateName: `${nodeName}-${DRA_DRIVER}-` }),
        // Garbage-collected with the Node: a node that leaves the cluster takes its slices along.
        ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: nodeName, uid: this.#nodeUid, controller: true }],
      },
      spec: sliceSpec(nodeName, devices, this.#generation),
    };
  }
}

/**
 * Node status publisher: keeps `emuv.io/vram-virtual` (bytes) in this Node's status.capacity and
 * status.allocatable, and the labels emuv.io/gpu.count and emuv.io/gpu.product on the Node.
 * Level-triggered: every resync it reads the Node and patches only what differs, so a kubelet that
 * zeroes extended resources on re-registration, or a Node that is deleted and recreated, is
 * corrected within one interval.
 */
import { LABEL_GPU_COUNT, LABEL_GPU_PRODUCT, RESOURCE_VRAM_VIRTUAL } from '../../common/contracts/resources.ts';
import type { Logger } from '../../common/log.ts';
import { errFields } from '../../common/log.ts';
import { setFields, type JsonPatchOp } from '../../common/kube/json-patch.ts';
import { Periodic } from '../../common/periodic.ts';
import type { Inventory } from '../inventory/inventory.ts';

/** The parts of a Node the publisher reads. */
export interface NodeView {
  metadata?: { labels?: Record<string, string> };
  status?: { capacity?: Record<string, string>; allocatable?: Record<string, string> };
}

/** The Kubernetes calls the publisher needs; implemented over @kubernetes/client-node in kube-node-api.ts. */
export interface NodeApi {
  getNode(name: string): Promise<NodeView>;
  patchNodeStatus(name: string, ops: JsonPatchOp[]): Promise<void>;
  patchNode(name: string, ops: JsonPatchOp[]): Promise<void>;
}

export interface DesiredNodeState {
  vramVirtualBytes: number;
  labels: Record<string, string>;
}

/** A label value: at most 63 of [A-Za-z0-9_.-], starting and ending with an alphanumeric. */
export function sanitizeLabelValue(text: string): string {
  const s = text
    .replace(/[^A-Za-z0-9_.-]+/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return s;
}

/** `devicePlugin` false: the node serves DRA, and its bytes are in its ResourceSlice, not in node status. */
export function desiredFromInventory(inv: Inventory, devicePlugin = true): DesiredNodeState {
  const names = [...new Set(inv.gpus.map((g) => g.name ?? 'unknown'))];
  const product = names.length === 0 ? '' : names.length === 1 ? sanitizeLabelValue(names[0]!) : 'mixed';
  const labels: Record<string, string> = { [LABEL_GPU_COUNT]: String(inv.gpus.length) };
  if (product) labels[LABEL_GPU_PRODUCT] = product;
  return { vramVirtualBytes: devicePlugin ? inv.vramVirtualBytes : 0, labels };
}

/** JSON patch for status (capacity and allocatable), or [] when the Node already agrees. */
export function statusPatch(node: NodeView, desired: DesiredNodeState): JsonPatchOp[] {
  const ours = { [RESOURCE_VRAM_VIRTUAL]: String(desired.vramVirtualBytes) };
  if (!node.status) return setFields(undefined, { capacity: ours, allocatable: ours }, '/status');
  return (['capacity', 'allocatable'] as const).flatMap((field) => setFields(node.status?.[field], ours, `/status/${field}`));
}

/** JSON patch for labels; [] when they already agree. Removes a product label that no longer applies. */
export function labelPatch(node: NodeView, desired: DesiredNodeState): JsonPatchOp[] {
  return setFields(node.metadata?.labels, { ...desired.labels }, '/metadata/labels', { remove: [LABEL_GPU_PRODUCT] });
}

export interface PublisherOptions {
  nodeName: string;
  api: NodeApi;
  logger: Logger;
  /** How often the Node is re-read and corrected. When unspecified, 5000 ms. */
  resyncMs?: number;
  onPatched?: () => void;
  onError?: () => void;
}

/** The loop (start, stop, halt; run = one pass now) is common/periodic.ts's; this class is the pass. */
export class NodeStatusPublisher extends Periodic {
  readonly #o: PublisherOptions;
  #desired: DesiredNodeState | null = null;
  #lastOk = false;

  constructor(options: PublisherOptions) {
    super(() => this.#reconcile(), options.resyncMs ?? 5000);
    this.#o = options;
  }

  /** True after the last reconcile succeeded. */
  get healthy(): boolean {
    return this.#lastOk;
  }

  /** Sets what should be published and reconciles now. */
  async publish(desired: DesiredNodeState): Promise<void> {
    this.#desired = desired;
    await this.run();
  }

  async #reconcile(): Promise<void> {
    const desired = this.#desired;
    if (!desired) return;
    const { api, nodeName, logger } = this.#o;
    try {
      const node = await api.getNode(nodeName);
      const s = statusPatch(node, desired);
      if (s.length > 0) {
        await api.patchNodeStatus(nodeName, s);
        logger.info('node status patched', { node: nodeName, [RESOURCE_VRAM_VIRTUAL]: desired.vramVirtualBytes });
      }
      const l = labelPatch(node, desired);
      if (l.length > 0) await api.patchNode(nodeName, l);
      if (s.length + l.length > 0) this.#o.onPatched?.();
      this.#lastOk = true;
    } catch (err) {
      this.#lastOk = false;
      this.#o.onError?.();
      logger.warn('node status reconcile failed; will retry', { node: nodeName, ...errFields(err) });
    }
  }
}

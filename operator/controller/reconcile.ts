/**
 * Level-triggered reconcile of two kinds of keys:
 *   `node/<name>`   EmuvNode.spec of one GPU node (create, patch only the differing fields, delete orphans);
 *   `policy/<name>` EmuvPolicy.status, rebuilt from the world every time and written only when it changed.
 * Everything is read from informer caches (never mutated); the decisions are the pure functions of
 * desired.ts and status.ts.
 */
import { isDeepStrictEqual } from 'node:util';
import { API_VERSION, KIND_NODE, KIND_POLICY } from '../api/schema.ts';
import { matchesSelector } from '../api/selector.ts';
import type { EmuvNode, EmuvNodeSpec, EmuvPolicy, EmuvPolicyStatus, LabelSelector } from '../api/types.ts';
import { parseEmuvPolicy } from '../api/validate.ts';
import type { Clock } from '../clock.ts';
import { isNotFound } from '../../common/kube/errors.ts';
import type { Logger } from '../../common/log.ts';
import { setFields, type JsonPatchOp } from '../../common/kube/json-patch.ts';
import type { EmuvApi } from '../kube/api.ts';
import { desiredNodeSpec, resolveNode } from './desired.ts';
import type { NodeInfo } from './desired.ts';
import { EVENT_CONFIGURED, EVENT_CONFIG_UPDATED, EVENT_INVALID_POLICY, EVENT_POLICY_CONFLICT } from './events.ts';
import type { EventRecorder } from './events.ts';
import { computeInvalidPolicyStatus, computePolicyStatus } from './status.ts';
import { LABEL_GPU_COUNT } from '../../common/contracts/resources.ts';

/** Label on EmuvNodes the operator created; only those are ever deleted by it. */
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'emuv-operator';

/** Default: a GPU node is one the agent labelled with its GPU count. */
export const DEFAULT_GPU_NODE_SELECTOR: LabelSelector = {
  matchExpressions: [{ key: LABEL_GPU_COUNT, operator: 'Exists' }],
};

/** Read-only view of an informer cache (client-node's ObjectCache satisfies it). */
export interface Lister<T> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): ReadonlyArray<T>;
}

export interface KubeNode {
  metadata?: { name?: string; uid?: string; labels?: Record<string, string> };
}

export interface ControllerCaches {
  policies: Lister<unknown>;
  nodes: Lister<KubeNode>;
  emuvNodes: Lister<EmuvNode>;
}

export const nodeKey = (name: string) => `node/${name}`;
export const policyKey = (name: string) => `policy/${name}`;

/** Field-level JSON Patch that turns `current` spec into `desired` (only differing top-level fields; the
 * operator owns the whole spec, so fields it no longer sets are removed). */
export function specPatch(current: Record<string, unknown> | undefined, desired: EmuvNodeSpec): JsonPatchOp[] {
  return setFields(current, desired as unknown as Record<string, unknown>, '/spec', { remove: 'others' });
}

export class Reconciler {
  private readonly caches: ControllerCaches;
  private readonly api: EmuvApi;
  private readonly events: EventRecorder;
  private readonly clock: Clock;
  private readonly gpuNodeSelector: LabelSelector;
  private readonly log: Logger;
  private readonly parsed = new WeakMap<object, ReturnType<typeof parseEmuvPolicy>>();

  constructor(deps: {
    caches: ControllerCaches;
    api: EmuvApi;
    events: EventRecorder;
    clock: Clock;
    gpuNodeSelector?: LabelSelector;
    logger: Logger;
  }) {
    this.caches = deps.caches;
    this.api = deps.api;
    this.events = deps.events;
    this.clock = deps.clock;
    this.gpuNodeSelector = deps.gpuNodeSelector ?? DEFAULT_GPU_NODE_SELECTOR;
    this.log = deps.logger;
  }

  async reconcile(key: string): Promise<void> {
    const slash = key.indexOf('/');
    const kind = key.slice(0, slash);
    const name = key.slice(slash + 1);
    if (kind === 'node') return this.reconcileNode(name);
    if (kind === 'policy') return this.reconcilePolicy(name);
    this.log.warn('dropping unknown key', { key });
  }

  /** All parseable policies, and the errors of the others by name. */
  validPolicies(): { valid: EmuvPolicy[]; invalid: Map<string, string[]> } {
    const valid: EmuvPolicy[] = [];
    const invalid = new Map<string, string[]>();
    for (const raw of this.caches.policies.list()) {
      const r = this.parse(raw);
      if (r.ok) valid.push(r.value);
      else invalid.set(nameOf(raw), r.errors);
    }
    return { valid, invalid };
  }

  /** Parses once per cached object: informers replace objects on change and never mutate them. */
  private parse(raw: unknown): ReturnType<typeof parseEmuvPolicy> {
    if (typeof raw !== 'object' || raw === null) return parseEmuvPolicy(raw);
    let r = this.parsed.get(raw);
    if (!r) this.parsed.set(raw, (r = parseEmuvPolicy(raw)));
    return r;
  }

  gpuNodes(): NodeInfo[] {
    const out: NodeInfo[] = [];
    for (const n of this.caches.nodes.list()) {
      const info = this.asGpuNode(n);
      if (info) out.push(info);
    }
    return out;
  }

  keysForAllNodes(): string[] {
    const names = new Set<string>();
    for (const n of this.gpuNodes()) names.add(n.name);
    for (const e of this.caches.emuvNodes.list()) names.add(e.metadata.name);
    return [...names].map(nodeKey);
  }

  keysForAllPolicies(): string[] {
    return this.caches.policies.list().map((p) => policyKey(nameOf(p)));
  }

  private asGpuNode(n: KubeNode | undefined): NodeInfo | undefined {
    const name = n?.metadata?.name;
    if (!name) return undefined;
    const labels = n.metadata?.labels ?? {};
    if (!matchesSelector(this.gpuNodeSelector, labels)) return undefined;
    const info: NodeInfo = { name, labels };
    if (n.metadata?.uid) info.uid = n.metadata.uid;
    return info;
  }

  private async reconcileNode(name: string): Promise<void> {
    const node = this.asGpuNode(this.caches.nodes.get(name));
    const current = this.caches.emuvNodes.get(name);
    if (!node) {
      if (current && current.metadata.labels?.[LABEL_MANAGED_BY] === MANAGED_BY) {
        try {
          await this.api.deleteEmuvNode(name);
        } catch (err) {
          if (!isNotFound(err)) throw new Error(`failed to delete EmuvNode ${name}`, { cause: err });
        }
        this.log.info('deleted EmuvNode of a node that is gone or no longer a GPU node', { node: name });
      }
      return;
    }
    const { valid } = this.validPolicies();
    const resolution = resolveNode(valid, node);
    const currentSpec = current?.spec && typeof current.spec === 'object' ? current.spec : undefined;
    const desired = desiredNodeSpec(valid, resolution, currentSpec);
    const ref = { apiVersion: API_VERSION, kind: KIND_NODE, name, ...(current?.metadata.uid ? { uid: current.metadata.uid } : {}) };

    if (!current) {
      const obj: EmuvNode = {
        apiVersion: API_VERSION,
        kind: KIND_NODE,
        metadata: { name, labels: { [LABEL_MANAGED_BY]: MANAGED_BY } },
        spec: desired,
      };
      // The Node owns its EmuvNode, so the garbage collector removes it with the Node.
      if (node.uid) obj.metadata.ownerReferences = [{ apiVersion: 'v1', kind: 'Node', name, uid: node.uid }];
      try {
        const created = await this.api.createEmuvNode(obj);
        await this.events.record({ ...ref, uid: created.metadata?.uid }, 'Normal', EVENT_CONFIGURED, describe(desired));
      } catch (err) {
        throw new Error(`failed to create EmuvNode ${name}`, { cause: err });
      }
    } else {
      const ops = specPatch(currentSpec as Record<string, unknown> | undefined, desired);
      if (ops.length > 0) {
        try {
          await this.api.patchEmuvNode(name, ops);
        } catch (err) {
          throw new Error(`failed to patch EmuvNode ${name}`, { cause: err });
        }
        const fields = ops.map((o) => o.path.replace('/spec/', '')).join(', ');
        await this.events.record(ref, 'Normal', EVENT_CONFIG_UPDATED, `changed ${fields}: ${describe(desired)}`);
      }
    }
    if (resolution.tie) {
      await this.events.record(
        ref,
        'Warning',
        EVENT_POLICY_CONFLICT,
        `policies ${resolution.tie.join(', ')} select this node with the same priority; keeping the current configuration`,
      );
    }
  }

  private async reconcilePolicy(name: string): Promise<void> {
    const raw = this.caches.policies.get(name);
    if (raw === undefined) return;
    const now = new Date(this.clock.now());
    const meta = (raw as { metadata?: { generation?: number; uid?: string } }).metadata ?? {};
    const prevStatus = (raw as { status?: EmuvPolicyStatus }).status;
    const parsed = this.parse(raw);
    let status: EmuvPolicyStatus;
    const ref = { apiVersion: API_VERSION, kind: KIND_POLICY, name, ...(meta.uid ? { uid: meta.uid } : {}) };
    if (!parsed.ok) {
      status = computeInvalidPolicyStatus(prevStatus, meta.generation, parsed.errors, now);
      await this.events.record(ref, 'Warning', EVENT_INVALID_POLICY, parsed.errors.slice(0, 5).join('; '));
    } else {
      const { valid } = this.validPolicies();
      status = computePolicyStatus(parsed.value, valid, this.gpuNodes(), now, prevStatus);
    }
    if (isDeepStrictEqual(prevStatus, status)) return;
    try {
      await this.api.patchEmuvPolicyStatus(name, [{ op: 'add', path: '/status', value: status }]);
    } catch (err) {
      if (isNotFound(err)) return;
      throw new Error(`failed to update status of EmuvPolicy ${name}`, { cause: err });
    }
  }
}

function nameOf(raw: unknown): string {
  const n = (raw as { metadata?: { name?: unknown } } | undefined)?.metadata?.name;
  return typeof n === 'string' ? n : '';
}

function describe(spec: EmuvNodeSpec): string {
  return (
    `policy=${spec.conflictingPolicies ? `(tie: ${spec.conflictingPolicies.join(', ')})` : (spec.policy ?? '(defaults)')} hostSpillBudget=${spec.hostSpillBudget} vramReservePerGpu=${spec.vramReservePerGpu} ` +
    `slotsPerGpu=${spec.slotsPerGpu} vramMode=${spec.vramMode} spillBackend=${spec.spillBackend} allocation=${spec.allocation ?? '(agent flag)'}`
  );
}

/**
 * The pod mutation, pure: `mutatePod(pod, policy)` decides, edits a structuredClone, and returns the
 * JSON Patch between the two, or a denial with a message a person can act on.
 *
 * For every container and init container that asks for emuv.io/vram-virtual:
 *  - requests and limits of emuv.io/vram-virtual must be equal; a side that is missing is copied from the other;
 *  - emuv.io/vgpu: "1" is added to requests and limits (the device-plugin slot that triggers Allocate);
 *  - EMUV_LIMIT_BYTES=<bytes> is set in its environment;
 *  - in podMemory mode Request, percentOfLimit % of the limit is added to its memory request, and to its
 *    memory limit when it has one (spill memory is allocated by the driver and not charged to the memory
 *    cgroup, so this is how the scheduler learns about it; see docs/operator.md).
 * The pod is annotated `emuv.io/admitted`. On an admitted pod, containers that already hold a slot are
 * skipped, so running the mutation on its own output changes nothing, while a container another webhook
 * added since (reinvocationPolicy IfNeeded) is still mutated. Without the annotation a slot in the spec
 * means the user asked for emuv.io/vgpu directly, which is denied.
 */
import { RESOURCE_VGPU, RESOURCE_VRAM_VIRTUAL } from '../../common/contracts/resources.ts';
import { ENV, MAX_SIZE_BYTES } from '../../common/contracts/interposer.ts';
import { matchesSelector } from '../api/selector.ts';
import type { EmuvPolicy, PodMemoryReservation } from '../api/types.ts';
import { DEFAULTS } from '../api/schema.ts';
import type { JsonPatchOp } from '../../common/kube/json-patch.ts';
import { diff } from '../../common/kube/json-patch.ts';
import { QuantityError, ceilBytes, formatBytes, parseQuantity, wholeBytes } from './quantity.ts';

/** Set on every pod the webhook mutated; its presence makes the mutation a no-op. */
export const ANNOTATION_ADMITTED = 'emuv.io/admitted';
/** Bytes of pod memory reserved for spill, per container, for humans and `emuv status`. */
export const ANNOTATION_SPILL_RESERVED = 'emuv.io/spill-memory-reserved';
export const ADMITTED_VERSION = 'v1';

/** What the webhook needs from the policies for one namespace (see `admissionPolicyFor`). */
export interface AdmissionPolicy {
  namespace: string;
  /** Set when the namespace may not ask at all. */
  deniedReason?: string;
  /** Largest limit per container; undefined: no limit. */
  maxPerContainer?: bigint;
  podMemory: PodMemoryReservation;
}

export type MutationResult =
  { allowed: true; patch: JsonPatchOp[]; warnings: string[] } | { allowed: false; code: 400 | 403; message: string };

/**
 * Combines the valid policies for a namespace. Policies select nodes, and a pod has no node yet at
 * admission, so the namespace gates are cluster-wide:
 *  - no policy at all: everyone may ask, defaults apply;
 *  - otherwise a namespace may ask if at least one policy's namespaceSelector matches it (unset: all);
 *  - the per-container maximum is the largest among those policies (unset on any: unlimited);
 *  - the pod-memory reservation comes from the matching policy with the highest priority; on a tie,
 *    the larger reservation (the safe side).
 */
export function admissionPolicyFor(
  policies: readonly EmuvPolicy[],
  namespace: string,
  namespaceLabels: Record<string, string> | undefined,
): AdmissionPolicy {
  const defaults: PodMemoryReservation = { ...DEFAULTS.podMemory };
  if (policies.length === 0) return { namespace, podMemory: defaults };
  // Every namespace carries this label; include it even when the namespace is not (yet) in the cache.
  const labels = { 'kubernetes.io/metadata.name': namespace, ...namespaceLabels };
  const applicable = policies.filter((p) => matchesSelector(p.spec.namespaceSelector, labels));
  if (applicable.length === 0) {
    return {
      namespace,
      podMemory: defaults,
      deniedReason:
        `namespace "${namespace}" may not ask for ${RESOURCE_VRAM_VIRTUAL}: no EmuvPolicy's namespaceSelector matches it ` +
        `(policies: ${policies
          .map((p) => p.metadata.name)
          .sort()
          .join(', ')})`,
    };
  }
  let max: bigint | undefined = 0n;
  for (const p of applicable) {
    if (p.spec.maxPerContainer === undefined) {
      max = undefined;
      break;
    }
    const m = wholeBytes(parseQuantity(p.spec.maxPerContainer), 'maxPerContainer');
    if (m > max!) max = m;
  }
  const reservation = (r: PodMemoryReservation) => (r.mode === 'Request' ? r.percentOfLimit : 0);
  const best = [...applicable].sort(
    (a, b) => b.spec.priority - a.spec.priority || reservation(b.spec.podMemory) - reservation(a.spec.podMemory),
  )[0]!;
  const out: AdmissionPolicy = { namespace, podMemory: { ...best.spec.podMemory } };
  if (max !== undefined) out.maxPerContainer = max;
  return out;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

interface ContainerRef {
  list: 'initContainers' | 'containers';
  index: number;
  c: Json;
}

function asksForEmuv(c: unknown): boolean {
  if (!isObject(c) || !isObject(c.resources)) return false;
  const { limits, requests } = c.resources;
  return (isObject(limits) && RESOURCE_VRAM_VIRTUAL in limits) || (isObject(requests) && RESOURCE_VRAM_VIRTUAL in requests);
}

function previousReservations(v: unknown): Record<string, string> {
  if (typeof v !== 'string') return {};
  try {
    const parsed: unknown = JSON.parse(v);
    return isObject(parsed) ? (parsed as Record<string, string>) : {};
  } catch {
    return {};
  }
}

/** A quantity as the user wrote it, for a message (bounded: quantities are at most 64 characters). */
function quantityText(q: unknown): string {
  return typeof q === 'string' ? `"${q.slice(0, 64)}"` : String(q);
}

function deny(code: 400 | 403, message: string): MutationResult {
  return { allowed: false, code, message };
}

export function mutatePod(pod: unknown, policy: AdmissionPolicy): MutationResult {
  if (!isObject(pod) || !isObject(pod.spec)) return deny(400, 'the object is not a pod: spec is missing');
  const spec = pod.spec;
  const refs: ContainerRef[] = [];
  for (const list of ['initContainers', 'containers'] as const) {
    const arr = spec[list];
    if (arr === undefined) continue;
    if (!Array.isArray(arr)) return deny(400, `spec.${list} must be a list`);
    arr.forEach((c, index) => {
      if (asksForEmuv(c)) refs.push({ list, index, c: c as Json });
    });
  }
  if (refs.length === 0) return { allowed: true, patch: [], warnings: [] };
  const meta = isObject(pod.metadata) ? pod.metadata : {};
  const admitted = isObject(meta.annotations) && meta.annotations[ANNOTATION_ADMITTED] !== undefined;
  if (policy.deniedReason && !admitted) return deny(403, policy.deniedReason);

  const mutated = structuredClone(pod) as Json & { spec: Json };
  const reserved: Record<string, string> = {};
  const warnings: string[] = [];
  for (const ref of refs) {
    const where = `${ref.list === 'initContainers' ? 'init container' : 'container'} "${String(ref.c.name ?? ref.index)}"`;
    const c = (mutated.spec[ref.list] as Json[])[ref.index]!;
    const res = c.resources as Json;
    if (res.limits !== undefined && !isObject(res.limits)) return deny(400, `${where}: resources.limits must be a map`);
    if (res.requests !== undefined && !isObject(res.requests)) return deny(400, `${where}: resources.requests must be a map`);
    const limits = (res.limits ?? {}) as Json;
    const requests = (res.requests ?? {}) as Json;
    if (RESOURCE_VGPU in limits || RESOURCE_VGPU in requests) {
      // On an admitted pod (reinvocation) a container with a slot was mutated by us before.
      if (admitted) continue;
      return deny(403, `${where}: ${RESOURCE_VGPU} is set by emuv; ask only for ${RESOURCE_VRAM_VIRTUAL}`);
    }
    if (admitted && policy.deniedReason) return deny(403, policy.deniedReason);
    let limitBytes: bigint;
    try {
      const lim =
        RESOURCE_VRAM_VIRTUAL in limits
          ? wholeBytes(parseQuantity(limits[RESOURCE_VRAM_VIRTUAL]), `${RESOURCE_VRAM_VIRTUAL} limit`)
          : undefined;
      const req =
        RESOURCE_VRAM_VIRTUAL in requests
          ? wholeBytes(parseQuantity(requests[RESOURCE_VRAM_VIRTUAL]), `${RESOURCE_VRAM_VIRTUAL} request`)
          : undefined;
      if (lim !== undefined && req !== undefined && lim !== req) {
        return deny(
          400,
          `${where}: requests and limits of ${RESOURCE_VRAM_VIRTUAL} must be equal (request ${formatBytes(req)}, limit ${formatBytes(lim)}); ` +
            `extended resources cannot be overcommitted`,
        );
      }
      limitBytes = (lim ?? req)!;
    } catch (err) {
      if (err instanceof QuantityError) return deny(400, `${where}: ${err.message}`);
      throw err;
    }
    if (limitBytes <= 0n) return deny(400, `${where}: ${RESOURCE_VRAM_VIRTUAL} must be greater than zero`);
    // EMUV_LIMIT_BYTES is an int64 on both sides of the interposer contract: a larger value (1e30, 9.3E)
    // would reach the container as a number the interposer refuses, and the pod's memory request with it.
    if (limitBytes > MAX_SIZE_BYTES)
      return deny(
        400,
        `${where}: ${RESOURCE_VRAM_VIRTUAL} ${quantityText(limits[RESOURCE_VRAM_VIRTUAL] ?? requests[RESOURCE_VRAM_VIRTUAL])} is ` +
          `larger than the maximum of ${MAX_SIZE_BYTES} bytes (2^63-1, what ${ENV.limitBytes} can carry)`,
      );
    if (policy.maxPerContainer !== undefined && limitBytes > policy.maxPerContainer) {
      return deny(
        403,
        `${where} asks for ${formatBytes(limitBytes)} of ${RESOURCE_VRAM_VIRTUAL}; EmuvPolicy allows at most ` +
          `${formatBytes(policy.maxPerContainer)} per container in namespace "${policy.namespace}"`,
      );
    }
    const exact = limitBytes.toString();
    // Keep what the user wrote (it is already right); fill in the missing side in the readable exact form.
    if (!(RESOURCE_VRAM_VIRTUAL in limits)) limits[RESOURCE_VRAM_VIRTUAL] = requests[RESOURCE_VRAM_VIRTUAL];
    if (!(RESOURCE_VRAM_VIRTUAL in requests)) requests[RESOURCE_VRAM_VIRTUAL] = limits[RESOURCE_VRAM_VIRTUAL];
    limits[RESOURCE_VGPU] = '1';
    requests[RESOURCE_VGPU] = '1';

    if (policy.podMemory.mode === 'Request' && policy.podMemory.percentOfLimit > 0) {
      const reserve = (limitBytes * BigInt(policy.podMemory.percentOfLimit) + 99n) / 100n;
      try {
        const hasLimit = limits.memory !== undefined;
        // Kubernetes defaults a missing request from the limit, so that is the base when only a limit exists.
        const baseRequest = requests.memory !== undefined ? requests.memory : limits.memory;
        const reqBytes = baseRequest !== undefined ? ceilBytes(parseQuantity(baseRequest)) : 0n;
        const limBytes = hasLimit ? ceilBytes(parseQuantity(limits.memory)) + reserve : 0n;
        // The kubelet and the scheduler hold memory as an int64 of bytes: a sum past it would wrap.
        if (reqBytes + reserve > MAX_SIZE_BYTES || limBytes > MAX_SIZE_BYTES)
          return deny(
            400,
            `${where}: memory plus the ${policy.podMemory.percentOfLimit}% of ${RESOURCE_VRAM_VIRTUAL} reserved for spill is larger than ` +
              `the maximum of ${MAX_SIZE_BYTES} bytes (2^63-1)`,
          );
        requests.memory = formatBytes(reqBytes + reserve);
        if (hasLimit) limits.memory = formatBytes(limBytes);
      } catch (err) {
        if (err instanceof QuantityError) return deny(400, `${where}: memory: ${err.message}`);
        throw err;
      }
      reserved[String(c.name ?? ref.index)] = reserve.toString();
    }
    res.limits = limits;
    res.requests = requests;

    if (c.env !== undefined && !Array.isArray(c.env)) return deny(400, `${where}: env must be a list`);
    const env = ((c.env as Json[] | undefined) ?? []).filter((e) => !(isObject(e) && e.name === ENV.limitBytes));
    if (env.length !== ((c.env as Json[] | undefined) ?? []).length) {
      warnings.push(`${where}: ${ENV.limitBytes} is set by emuv; the value in the pod spec was replaced`);
    }
    env.push({ name: ENV.limitBytes, value: exact });
    c.env = env;
  }
  const m = (isObject(mutated.metadata) ? mutated.metadata : (mutated.metadata = {})) as Json;
  const annotations = (isObject(m.annotations) ? m.annotations : (m.annotations = {})) as Json;
  annotations[ANNOTATION_ADMITTED] = ADMITTED_VERSION;
  if (Object.keys(reserved).length > 0) {
    annotations[ANNOTATION_SPILL_RESERVED] = JSON.stringify({
      ...previousReservations(annotations[ANNOTATION_SPILL_RESERVED]),
      ...reserved,
    });
  }
  return { allowed: true, patch: diff(pod, mutated), warnings };
}

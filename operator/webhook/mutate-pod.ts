/**
 * The pod mutation, pure: `mutatePod(pod, policy)` decides, edits a structuredClone, and returns the
 * JSON Patch between the two, or a denial with a message a person can act on.
 *
 * For every container and init container that asks for emuv.io/vram-virtual:
 *  - requests and limits of emuv.io/vram-virtual must be equal; the per-container maximum and the int64
 *    bound are checked;
 *  - in podMemory mode Request, percentOfLimit % of the limit is added to its memory request, and to its
 *    memory limit when it has one (spill memory is allocated by the driver and not charged to the memory
 *    cgroup, so this is how the scheduler learns about it; see docs/operator.md);
 *  - an EMUV_LIMIT_BYTES of the user's is removed, with a warning;
 * and then, by the policy's allocation:
 *  - DevicePlugin: a side of emuv.io/vram-virtual that is missing is copied from the other, emuv.io/vgpu: "1"
 *    is added to requests and limits (the device-plugin slot that triggers Allocate), and
 *    EMUV_LIMIT_BYTES=<bytes> is set in its environment;
 *  - DRA: emuv.io/vram-virtual is removed from requests and limits and replaced by a pod claim
 *    `emuv-c<index>` (`emuv-i<index>` for init containers) made from the ResourceClaimTemplate
 *    claimTemplateName(bytes), listed in the container's resources.claims. EMUV_LIMIT_BYTES comes from the
 *    DRA driver's CDI spec. The result names the templates (claimTemplates), which the admission handler
 *    makes sure exist (claim-templates.ts); the pod is annotated `emuv.io/allocation: DRA`.
 * The pod is annotated `emuv.io/admitted`. On an admitted pod, containers that already hold a slot are
 * skipped (converted ones no longer ask), so running the mutation on its own output changes nothing, while
 * a container another webhook added since (reinvocationPolicy IfNeeded) is still mutated. Without the
 * annotation a slot in the spec means the user asked for emuv.io/vgpu directly, which is denied. Pods that
 * bring their own resourceClaims and do not ask for emuv.io/vram-virtual are not touched.
 */
import { RESOURCE_VGPU, RESOURCE_VRAM_VIRTUAL } from '../../common/contracts/resources.ts';
import { ENV, MAX_SIZE_BYTES } from '../../common/contracts/interposer.ts';
import { matchesSelector } from '../api/selector.ts';
import type { EmuvPolicy, PodMemoryReservation } from '../api/types.ts';
import { DEFAULTS } from '../api/schema.ts';
import type { JsonPatchOp } from '../../common/kube/json-patch.ts';
import { diff } from '../../common/kube/json-patch.ts';
import { QuantityError, ceilBytes, formatBytes, parseQuantity, wholeBytes } from '../../common/kube/quantity.ts';
import { DEFAULT_ALLOCATION, POD_CLAIM_PREFIX, claimTemplateName } from '../../common/contracts/dra.ts';
import type { Allocation } from '../../common/contracts/dra.ts';

/** Set on every pod the webhook mutated; its presence makes the mutation a no-op. */
export const ANNOTATION_ADMITTED = 'emuv.io/admitted';
/** Bytes of pod memory reserved for spill, per container, for humans and `emuv status`. */
export const ANNOTATION_SPILL_RESERVED = 'emuv.io/spill-memory-reserved';
export const ADMITTED_VERSION = 'v1';
/** Set (to DRA) on pods whose emuv.io/vram-virtual was turned into resource claims, for humans. */
export const ANNOTATION_ALLOCATION = 'emuv.io/allocation';

/** What the webhook needs from the policies for one namespace (see `admissionPolicyFor`). */
export interface AdmissionPolicy {
  namespace: string;
  /** Set when the namespace may not ask at all. */
  deniedReason?: string;
  /** Largest limit per container; undefined: no limit. */
  maxPerContainer?: bigint;
  podMemory: PodMemoryReservation;
  /** How emuv.io/vram-virtual is served; undefined: DEFAULT_ALLOCATION (DevicePlugin). */
  allocation?: Allocation;
}

export type MutationResult =
  | {
      allowed: true;
      patch: JsonPatchOp[];
      warnings: string[];
      /** DRA: sizes in bytes whose ResourceClaimTemplates the patch refers to (absent when none). */
      claimTemplates?: bigint[];
    }
  | { allowed: false; code: 400 | 403 | 500; message: string };

/**
 * Combines the valid policies for a namespace. Policies select nodes, and a pod has no node yet at
 * admission, so the namespace gates are cluster-wide:
 *  - no policy at all: everyone may ask, defaults apply;
 *  - otherwise a namespace may ask if at least one policy's namespaceSelector matches it (unset: all);
 *  - the per-container maximum is the largest among those policies (unset on any: unlimited);
 *  - the pod-memory reservation comes from the matching policy with the highest priority; on a tie,
 *    the larger reservation (the safe side);
 *  - the allocation comes from the matching policy with the highest priority; on a tie, the first by name
 *    (neither choice is safer: the pod can only run on nodes of its allocation); no policy: DevicePlugin.
 */
export function admissionPolicyFor(
  policies: readonly EmuvPolicy[],
  namespace: string,
  namespaceLabels: Record<string, string> | undefined,
): AdmissionPolicy {
  const defaults: PodMemoryReservation = { ...DEFAULTS.podMemory };
  if (policies.length === 0) return { namespace, podMemory: defaults, allocation: DEFAULT_ALLOCATION };
  // Every namespace carries this label; include it even when the namespace is not (yet) in the cache.
  const labels = { 'kubernetes.io/metadata.name': namespace, ...namespaceLabels };
  const applicable = policies.filter((p) => matchesSelector(p.spec.namespaceSelector, labels));
  if (applicable.length === 0) {
    return {
      namespace,
      podMemory: defaults,
      allocation: DEFAULT_ALLOCATION,
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
  const byName = (a: EmuvPolicy, b: EmuvPolicy) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0);
  const first = [...applicable].sort((a, b) => b.spec.priority - a.spec.priority || byName(a, b))[0]!;
  const out: AdmissionPolicy = { namespace, podMemory: { ...best.spec.podMemory }, allocation: first.spec.allocation };
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
  const templates: bigint[] = [];
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
    const dra = (policy.allocation ?? DEFAULT_ALLOCATION) === 'DRA';
    if (dra) {
      // The claim carries the size now; the extended resource would keep the pod off DRA nodes.
      delete limits[RESOURCE_VRAM_VIRTUAL];
      delete requests[RESOURCE_VRAM_VIRTUAL];
    } else {
      // Keep what the user wrote (it is already right); fill in the missing side in the readable exact form.
      if (!(RESOURCE_VRAM_VIRTUAL in limits)) limits[RESOURCE_VRAM_VIRTUAL] = requests[RESOURCE_VRAM_VIRTUAL];
      if (!(RESOURCE_VRAM_VIRTUAL in requests)) requests[RESOURCE_VRAM_VIRTUAL] = limits[RESOURCE_VRAM_VIRTUAL];
      limits[RESOURCE_VGPU] = '1';
      requests[RESOURCE_VGPU] = '1';
    }

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
    // On DRA a map left empty goes (a requests-only ask must not gain `limits: {}`).
    if (dra && Object.keys(limits).length === 0) delete res.limits;
    else res.limits = limits;
    if (dra && Object.keys(requests).length === 0) delete res.requests;
    else res.requests = requests;

    if (c.env !== undefined && !Array.isArray(c.env)) return deny(400, `${where}: env must be a list`);
    const env = ((c.env as Json[] | undefined) ?? []).filter((e) => !(isObject(e) && e.name === ENV.limitBytes));
    if (env.length !== ((c.env as Json[] | undefined) ?? []).length) {
      warnings.push(`${where}: ${ENV.limitBytes} is set by emuv; the value in the pod spec was replaced`);
    }
    if (dra) {
      // The DRA driver's CDI spec sets EMUV_LIMIT_BYTES to what the claim was given.
      if (c.env !== undefined) c.env = env;
      const claimed = addClaim(mutated.spec, c, res, ref, limitBytes, where);
      if (typeof claimed === 'string') return deny(400, claimed);
      if (!templates.includes(limitBytes)) templates.push(limitBytes);
    } else {
      env.push({ name: ENV.limitBytes, value: limitBytes.toString() });
      c.env = env;
    }
  }
  const m = (isObject(mutated.metadata) ? mutated.metadata : (mutated.metadata = {})) as Json;
  const annotations = (isObject(m.annotations) ? m.annotations : (m.annotations = {})) as Json;
  annotations[ANNOTATION_ADMITTED] = ADMITTED_VERSION;
  if (templates.length > 0) annotations[ANNOTATION_ALLOCATION] = 'DRA';
  if (Object.keys(reserved).length > 0) {
    annotations[ANNOTATION_SPILL_RESERVED] = JSON.stringify({
      ...previousReservations(annotations[ANNOTATION_SPILL_RESERVED]),
      ...reserved,
    });
  }
  const patch = diff(pod, mutated);
  return templates.length > 0 ? { allowed: true, patch, warnings, claimTemplates: templates } : { allowed: true, patch, warnings };
}

/**
 * DRA: gives the container its pod claim. The pod-level entry `{name, resourceClaimTemplateName}` and the
 * container's `resources.claims` entry are added only when missing, so other claims stay and nothing is
 * listed twice. A pod claim of that name that is something else is the user's: refused, not overwritten.
 * Returns a denial message, or undefined.
 */
function addClaim(spec: Json, c: Json, res: Json, ref: ContainerRef, bytes: bigint, where: string): string | undefined {
  const name = `${POD_CLAIM_PREFIX}${ref.list === 'initContainers' ? 'i' : 'c'}${ref.index}`;
  const template = claimTemplateName(bytes);
  if (spec.resourceClaims !== undefined && !Array.isArray(spec.resourceClaims)) return 'spec.resourceClaims must be a list';
  const podClaims = (spec.resourceClaims ?? []) as unknown[];
  const existing = podClaims.find((p) => isObject(p) && p.name === name) as Json | undefined;
  if (existing) {
    if (existing.resourceClaimTemplateName !== template || existing.resourceClaimName !== undefined)
      return (
        `${where}: the pod claim "${name}" is emuv's name for this container's ${RESOURCE_VRAM_VIRTUAL} claim, ` +
        `but the pod already has a claim of that name that is not made from ResourceClaimTemplate "${template}"; rename it`
      );
  } else {
    podClaims.push({ name, resourceClaimTemplateName: template });
    spec.resourceClaims = podClaims;
  }
  if (res.claims !== undefined && !Array.isArray(res.claims)) return `${where}: resources.claims must be a list`;
  const claims = (res.claims ?? []) as unknown[];
  if (!claims.some((x) => isObject(x) && x.name === name)) claims.push({ name });
  res.claims = claims;
  return undefined;
}

/** Pure status computation for EmuvPolicy: rebuilt from the world on every reconcile. */
import type { Condition, EmuvPolicy, EmuvPolicyStatus, PolicyConflict } from '../api/types.ts';
import { resolveNode } from './desired.ts';
import type { NodeInfo } from './desired.ts';

export const CONDITION_READY = 'Ready';
export const REASON_APPLIED = 'Applied';
export const REASON_NO_NODES = 'NoMatchingNodes';
export const REASON_TIE = 'PriorityTie';
export const REASON_INVALID = 'Invalid';
/** Status lists at most this many conflicts; conflictCount carries the full number. */
export const MAX_LISTED_CONFLICTS = 32;

/**
 * Sets a condition, keeping lastTransitionTime when the status did not change (so a reconcile that
 * finds nothing new writes nothing new).
 */
export function setCondition(prev: readonly Condition[] | undefined, next: Condition): Condition[] {
  const old = prev?.find((c) => c.type === next.type);
  const merged = old && old.status === next.status ? { ...next, lastTransitionTime: old.lastTransitionTime } : next;
  return [...(prev ?? []).filter((c) => c.type !== next.type), merged].sort((a, b) => (a.type < b.type ? -1 : 1));
}

/** Status of a valid policy, given all valid policies and all emuv nodes. */
export function computePolicyStatus(
  policy: EmuvPolicy,
  policies: readonly EmuvPolicy[],
  nodes: readonly NodeInfo[],
  now: Date,
  prev: EmuvPolicyStatus | undefined = policy.status,
): EmuvPolicyStatus {
  const name = policy.metadata.name;
  let matched = 0;
  let applied = 0;
  let ties = 0;
  const conflicts: PolicyConflict[] = [];
  for (const node of [...nodes].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const r = resolveNode(policies, node);
    if (!r.matched.includes(name)) continue;
    matched++;
    if (r.winner === name) {
      applied++;
    } else if (r.tie?.includes(name)) {
      ties++;
      conflicts.push({ node: node.name, type: 'Tie', policies: r.tie.filter((p) => p !== name) });
    } else {
      conflicts.push({ node: node.name, type: 'Shadowed', policies: r.winner ? [r.winner] : (r.tie ?? []) });
    }
  }
  const generation = policy.metadata.generation;
  const ready: Condition =
    ties > 0
      ? {
          type: CONDITION_READY,
          status: 'False',
          reason: REASON_TIE,
          message: `same priority as another policy on ${ties} node(s): ${conflicts
            .filter((c) => c.type === 'Tie')
            .slice(0, 3)
            .map((c) => `${c.node} (with ${c.policies.join(', ')})`)
            .join('; ')}; those nodes keep their current configuration until the priorities differ`,
          lastTransitionTime: now.toISOString(),
        }
      : {
          type: CONDITION_READY,
          status: 'True',
          reason: matched === 0 ? REASON_NO_NODES : REASON_APPLIED,
          message: matched === 0 ? 'the node selector matches no emuv node' : `in effect on ${applied} of ${matched} matched node(s)`,
          lastTransitionTime: now.toISOString(),
        };
  if (generation !== undefined) ready.observedGeneration = generation;
  const status: EmuvPolicyStatus = {
    matchedNodes: matched,
    appliedNodes: applied,
    conflictCount: conflicts.length,
    conflicts: conflicts.slice(0, MAX_LISTED_CONFLICTS),
    conditions: setCondition(prev?.conditions, ready),
  };
  if (generation !== undefined) status.observedGeneration = generation;
  return status;
}

/** Status of a policy that failed validation: it applies nowhere, and says why. */
export function computeInvalidPolicyStatus(
  prev: EmuvPolicyStatus | undefined,
  generation: number | undefined,
  errors: readonly string[],
  now: Date,
): EmuvPolicyStatus {
  const ready: Condition = {
    type: CONDITION_READY,
    status: 'False',
    reason: REASON_INVALID,
    message: errors.slice(0, 5).join('; '),
    lastTransitionTime: now.toISOString(),
  };
  if (generation !== undefined) ready.observedGeneration = generation;
  const status: EmuvPolicyStatus = {
    matchedNodes: 0,
    appliedNodes: 0,
    conflictCount: 0,
    conflicts: [],
    conditions: setCondition(prev?.conditions, ready),
  };
  if (generation !== undefined) status.observedGeneration = generation;
  return status;
}

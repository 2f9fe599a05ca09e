/**
 * Pure policy merge: which EmuvPolicy is in effect on which node, and the EmuvNode.spec that follows.
 *
 * Rules: a policy applies to a node its nodeSelector matches; the highest priority wins; two or more
 * policies sharing the highest priority are a Tie, which is never resolved by us: the node keeps the
 * configuration it has (defaults for a new node) and carries `conflictingPolicies` until an admin fixes
 * the priorities. Lower-priority matches are reported as Shadowed, so an overlap is never silent.
 */
import { DEFAULTS } from '../api/schema.ts';
import { matchesSelector } from '../api/selector.ts';
import type { EmuvNodeSpec, EmuvPolicy, NodeConfig } from '../api/types.ts';

export interface NodeInfo {
  name: string;
  uid?: string;
  labels: Record<string, string>;
}

export interface NodeResolution {
  node: string;
  /** Names of the policies that select the node, highest priority first, then by name. */
  matched: string[];
  /** The policy in effect; undefined when none matches or on a tie. */
  winner?: string;
  /** Names of the policies tied at the highest priority (two or more), sorted. */
  tie?: string[];
}

export const DEFAULT_NODE_CONFIG: NodeConfig = {
  hostSpillBudget: DEFAULTS.hostSpillBudget,
  vramReservePerGpu: DEFAULTS.vramReservePerGpu,
  slotsPerGpu: DEFAULTS.slotsPerGpu,
  vramMode: DEFAULTS.vramMode,
  spillBackend: DEFAULTS.spillBackend,
  allocation: DEFAULTS.allocation,
};

const byPriorityThenName = (a: EmuvPolicy, b: EmuvPolicy) =>
  b.spec.priority - a.spec.priority || (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0);

export function resolveNode(policies: readonly EmuvPolicy[], node: NodeInfo): NodeResolution {
  const matching = policies.filter((p) => matchesSelector(p.spec.nodeSelector, node.labels)).sort(byPriorityThenName);
  const matched = matching.map((p) => p.metadata.name);
  const top = matching[0];
  if (!top) return { node: node.name, matched };
  const tied = matching.filter((p) => p.spec.priority === top.spec.priority);
  if (tied.length > 1) return { node: node.name, matched, tie: tied.map((p) => p.metadata.name).sort() };
  return { node: node.name, matched, winner: top.metadata.name };
}

/**
 * The node-config fields of a spec. `allocation` is copied only when present: a policy always has it
 * (defaulted), while an EmuvNode written by an operator older than the field has none, and a tie keeps
 * that node as it is (its agent goes on with its --allocation flag).
 */
function configOf(spec: NodeConfig): NodeConfig {
  const out: NodeConfig = {
    hostSpillBudget: spec.hostSpillBudget,
    vramReservePerGpu: spec.vramReservePerGpu,
    slotsPerGpu: spec.slotsPerGpu,
    vramMode: spec.vramMode,
    spillBackend: spec.spillBackend,
  };
  if (spec.allocation !== undefined) out.allocation = spec.allocation;
  return out;
}

/** The EmuvNode.spec a node should have, given the resolution and its current spec (if any). */
export function desiredNodeSpec(
  policies: readonly EmuvPolicy[],
  resolution: NodeResolution,
  current: EmuvNodeSpec | undefined,
): EmuvNodeSpec {
  if (resolution.tie) {
    const kept: EmuvNodeSpec = current ? configOf(current) : { ...DEFAULT_NODE_CONFIG };
    if (current?.policy !== undefined) kept.policy = current.policy;
    kept.conflictingPolicies = resolution.tie;
    return kept;
  }
  const winner = policies.find((p) => p.metadata.name === resolution.winner);
  if (!winner) return { ...DEFAULT_NODE_CONFIG };
  return { ...configOf(winner.spec), policy: winner.metadata.name };
}

/** Desired specs for all nodes (name -> spec). */
export function desiredNodeSpecs(
  policies: readonly EmuvPolicy[],
  nodes: readonly NodeInfo[],
  current: ReadonlyMap<string, EmuvNodeSpec> = new Map(),
): Map<string, EmuvNodeSpec> {
  const out = new Map<string, EmuvNodeSpec>();
  for (const node of nodes) {
    out.set(node.name, desiredNodeSpec(policies, resolveNode(policies, node), current.get(node.name)));
  }
  return out;
}

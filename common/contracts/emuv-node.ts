/**
 * The EmuvNode contract between the operator (writes spec) and the agent (reads spec, writes status),
 * `emuv.io/v1alpha1`. Names, enums and bounds live here once; the operator's CRD schema
 * (operator/api/schema.ts) is built from them, and the agent parses spec with `parseNodeConfig`.
 */
import type { VramMode } from './interposer.ts';
import { parseSize } from './interposer.ts';
import { MAX_SPILL_PERCENT, parseHostSpill, type HostSpill } from './host-spill.ts';
import { ALLOCATION_VALUES, type Allocation } from './dra.ts';

export const GROUP = 'emuv.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND_POLICY = 'EmuvPolicy';
export const KIND_NODE = 'EmuvNode';
export const PLURAL_POLICY = 'emuvpolicies';
export const PLURAL_NODE = 'emuvnodes';

/**
 * Largest byte size of the node configuration (hostSpillBudget, vramReservePerGpu) the agent accepts:
 * 2^53-1 (about 8 PiB), the largest integer its arithmetic holds exactly. The CRDs refuse larger sizes with
 * a CEL rule built from this number (operator/api/schema.ts), so a policy the apiserver admits is one the
 * agent applies.
 */
export const MAX_NODE_SIZE_BYTES = Number.MAX_SAFE_INTEGER;
/** Slots per GPU: the agent's flag and the CRD accept 1 to this. */
export const MAX_SLOTS_PER_GPU = 128;
/** hostSpillBudget as a percentage may be at most this (its grammar is common/contracts/host-spill.ts). */
export { MAX_SPILL_PERCENT };
export const VRAM_MODE_VALUES = ['Fill', 'Fixed'] as const;
export const SPILL_BACKEND_VALUES = ['Auto', 'Pinned', 'Managed'] as const;

export type VramModeName = (typeof VRAM_MODE_VALUES)[number];
export type SpillBackend = (typeof SPILL_BACKEND_VALUES)[number];
export { ALLOCATION_VALUES, type Allocation };

/** The node configuration fields of EmuvNode.spec (and EmuvPolicy.spec), as the API stores them. */
export interface NodeConfig {
  hostSpillBudget: string;
  vramReservePerGpu: string;
  slotsPerGpu: number;
  vramMode: VramModeName;
  spillBackend: SpillBackend;
  /**
   * How the node serves virtual GPU memory (common/contracts/dra.ts). The operator always writes it; an
   * EmuvNode written by an operator older than the field has none (EmuvPolicy.spec defaults it).
   */
  allocation?: Allocation;
}

export type ParsedHostSpill = HostSpill;

/** What the agent applies: sizes in bytes, modes in the interposer contract's spelling. */
export interface AgentNodeConfig {
  hostSpill: ParsedHostSpill;
  vramReserveBytes: number;
  slotsPerGpu: number;
  vramMode: VramMode;
  /** The CRD's spelling; applyNodeConfig (plugin/agent/emuv-node.ts) maps it onto EMUV_SPILL_BACKEND's. */
  spillBackend: SpillBackend;
  /** undefined when the EmuvNode has no allocation (written by an older operator): the agent keeps its --allocation flag. */
  allocation?: Allocation;
}

function bytes(field: string, text: unknown): number {
  if (typeof text !== 'string') throw new Error(`${field}: expected a size string, got ${JSON.stringify(text)}`);
  let v: bigint;
  try {
    v = parseSize(text);
  } catch (err) {
    throw new Error(`${field}: ${(err as Error).message}`, { cause: err });
  }
  if (v > BigInt(MAX_NODE_SIZE_BYTES)) throw new Error(`${field}: ${text} is larger than ${MAX_NODE_SIZE_BYTES} bytes (2^53-1)`);
  return Number(v);
}

/**
 * Strict parse of EmuvNode.spec's node configuration (extra fields such as `policy` are the
 * operator's bookkeeping and ignored). Throws with the field and the reason.
 */
export function parseNodeConfig(spec: unknown): AgentNodeConfig {
  if (typeof spec !== 'object' || spec === null) throw new Error('spec: expected an object');
  const s = spec as Record<string, unknown>;
  // One grammar with the agent's --host-spill (host-spill.ts): what the CRD admits, the agent applies.
  const spill = s.hostSpillBudget;
  if (typeof spill !== 'string') throw new Error(`hostSpillBudget: expected a string, got ${JSON.stringify(spill)}`);
  let hostSpill: ParsedHostSpill;
  try {
    hostSpill = parseHostSpill(spill);
  } catch (err) {
    throw new Error(`hostSpillBudget: ${JSON.stringify(spill)}: ${(err as Error).message}`, { cause: err });
  }
  const slots = s.slotsPerGpu;
  if (typeof slots !== 'number' || !Number.isInteger(slots) || slots < 1 || slots > MAX_SLOTS_PER_GPU)
    throw new Error(`slotsPerGpu: expected an integer from 1 to ${MAX_SLOTS_PER_GPU}, got ${JSON.stringify(slots)}`);
  if (!(VRAM_MODE_VALUES as readonly unknown[]).includes(s.vramMode))
    throw new Error(`vramMode: expected ${VRAM_MODE_VALUES.join(' or ')}, got ${JSON.stringify(s.vramMode)}`);
  if (!(SPILL_BACKEND_VALUES as readonly unknown[]).includes(s.spillBackend))
    throw new Error(`spillBackend: expected ${SPILL_BACKEND_VALUES.join(', ')}, got ${JSON.stringify(s.spillBackend)}`);
  // Optional (older operators do not write it), strict when present.
  if (s.allocation !== undefined && !(ALLOCATION_VALUES as readonly unknown[]).includes(s.allocation))
    throw new Error(`allocation: expected ${ALLOCATION_VALUES.join(' or ')}, got ${JSON.stringify(s.allocation)}`);
  const out: AgentNodeConfig = {
    hostSpill,
    vramReserveBytes: bytes('vramReservePerGpu', s.vramReservePerGpu),
    slotsPerGpu: slots,
    vramMode: s.vramMode === 'Fixed' ? 'fixed' : 'fill',
    spillBackend: s.spillBackend as SpillBackend,
  };
  if (s.allocation !== undefined) out.allocation = s.allocation as Allocation;
  return out;
}

/**
 * Bytes as a person reads them in `kubectl get`: the largest binary unit with at most one decimal, in the
 * Kubernetes quantity spelling (`7.5Gi`, `512Mi`, `28Gi`, `0`). Rounded, so for people only: the byte fields
 * beside it are what programs read.
 */
export function humanBytes(bytes: number): string {
  const units = ['Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];
  let value = bytes;
  let unit = '';
  for (const u of units) {
    if (Math.abs(value) < 1024) break;
    value /= 1024;
    unit = u;
  }
  const text = unit === '' ? String(Math.round(value)) : String(Math.round(value * 10) / 10);
  return `${text}${unit}`;
}

/** EmuvNode.status.summary: the sizes of the status for `kubectl get emuvnodes`, in humanBytes' form. */
export const SUMMARY_FIELDS = ['vram', 'virtual', 'committed', 'used', 'spillInUse', 'spillBudget'] as const;
export type NodeSummary = Record<(typeof SUMMARY_FIELDS)[number], string>;

/** TypeScript shapes of `emuv.io/v1alpha1`; the schemas in `schema.ts` are authoritative. */
import type { POD_MEMORY_MODE_VALUES, SELECTOR_OPERATORS } from './schema.ts';
import type { Allocation, NodeConfig, SpillBackend, VramModeName } from '../../common/contracts/emuv-node.ts';

export type { Allocation, NodeConfig, SpillBackend, VramModeName };
export type PodMemoryMode = (typeof POD_MEMORY_MODE_VALUES)[number];
export type SelectorOperator = (typeof SELECTOR_OPERATORS)[number];

export interface LabelSelectorRequirement {
  key: string;
  operator: SelectorOperator;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface PodMemoryReservation {
  mode: PodMemoryMode;
  percentOfLimit: number;
}

/** EmuvPolicy.spec after defaulting (every defaulted field present). */
export interface EmuvPolicySpec extends NodeConfig {
  /** Defaulted (DevicePlugin), so always present on a parsed policy. */
  allocation: Allocation;
  nodeSelector: LabelSelector;
  priority: number;
  maxPerContainer?: string;
  namespaceSelector?: LabelSelector;
  podMemory: PodMemoryReservation;
}

export type ConflictType = 'Tie' | 'Shadowed';

export interface PolicyConflict {
  node: string;
  type: ConflictType;
  /** The other policies involved (for Shadowed: the winner). */
  policies: string[];
}

export interface EmuvPolicyStatus {
  observedGeneration?: number;
  matchedNodes?: number;
  appliedNodes?: number;
  conflictCount?: number;
  conflicts?: PolicyConflict[];
  conditions?: Condition[];
}

export interface EmuvPolicy {
  apiVersion: 'emuv.io/v1alpha1';
  kind: 'EmuvPolicy';
  metadata: ObjectMeta;
  spec: EmuvPolicySpec;
  status?: EmuvPolicyStatus;
}

export interface EmuvNodeSpec extends NodeConfig {
  policy?: string;
  conflictingPolicies?: string[];
}

export interface GpuStatus {
  index: number;
  uuid?: string;
  model?: string;
  pciAddress: string;
  numaNode?: number;
  vram: string;
  link?: { generation?: number; width?: number };
}

export interface EmuvNodeStatus {
  observedGeneration?: number;
  gpuCount?: number;
  gpus?: GpuStatus[];
  capacity?: { vram?: string; spillBudget?: string; virtual?: string; slots?: number };
  committed?: string;
  used?: string;
  spillInUse?: string;
  conditions?: Condition[];
}

export interface EmuvNode {
  apiVersion: 'emuv.io/v1alpha1';
  kind: 'EmuvNode';
  metadata: ObjectMeta;
  spec: EmuvNodeSpec;
  status?: EmuvNodeStatus;
}

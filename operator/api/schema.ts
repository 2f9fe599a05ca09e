/**
 * The `emuv.io/v1alpha1` OpenAPI v3 schemas, the single source of truth for both CRDs.
 *
 * `deploy/crds/*.yaml` is generated from this module (`node operator/api/crd.ts --write`) and a test
 * fails when the committed YAML drifts. The TypeScript validator (`validate.ts`) walks the same schema
 * objects, so defaults, enums, patterns and bounds cannot disagree between the apiserver and the operator.
 * CEL rules are listed here with their messages; `validate.ts` implements each one by its `id`.
 */

import {
  ALLOCATION_VALUES,
  MAX_NODE_SIZE_BYTES,
  MAX_SLOTS_PER_GPU,
  MAX_SPILL_PERCENT,
  SPILL_BACKEND_VALUES,
  SUMMARY_FIELDS,
  VRAM_MODE_VALUES,
} from '../../common/contracts/emuv-node.ts';
import { HOST_SPILL_SHAPE_PATTERN, SPILL_PERCENT_REASON } from '../../common/contracts/host-spill.ts';
import { DEFAULT_ALLOCATION } from '../../common/contracts/dra.ts';

// The names, enums and bounds the agent shares are defined once, in common/contracts/emuv-node.ts.
export * from '../../common/contracts/emuv-node.ts';
/** Bumped when the shape of v1alpha1 changes incompatibly (CRDs carry it as an annotation). */
export const SCHEMA_REVISION = 1;

/** A subset of OpenAPI v3 as structural CRD schemas use it. */
export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'boolean';
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  additionalProperties?: Schema;
  enum?: string[];
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  maxItems?: number;
  maxProperties?: number;
  default?: unknown;
  nullable?: boolean;
  'x-kubernetes-validations'?: CelRule[];
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

/** A CEL rule; `id` ties it to its TypeScript twin in `validate.ts` and is stripped from the YAML. */
export interface CelRule {
  id: string;
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** Contract size: plain bytes or an integer with Ki/Mi/Gi/Ti (`common/contracts/interposer.ts parseSize`). */
export const SIZE_PATTERN = '^(0|[1-9][0-9]*)(Ki|Mi|Gi|Ti)?$';
/**
 * hostSpillBudget's shape (`Auto` or `auto`, a size, or a percentage; the 90 % bound is a rule of its own):
 * the agent's grammar, from common/contracts/host-spill.ts.
 */
export const SIZE_OR_PERCENT_PATTERN = HOST_SPILL_SHAPE_PATTERN;

export const POD_MEMORY_MODE_VALUES = ['Request', 'None'] as const;
export const SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

/** Binary suffixes of a size and their shifts, largest first. */
export const SIZE_SUFFIX_SHIFTS = [
  ['Ti', 40],
  ['Gi', 30],
  ['Mi', 20],
  ['Ki', 10],
] as const;

/**
 * CEL: a value of SIZE_PATTERN's form is at most `max` bytes (anything else passes: the format rules judge
 * it). CEL's int is an int64 and `int()` of a longer number is an evaluation error, not false, so each
 * suffix compares the number before it with floor(max / unit), after a length check that keeps `int()`
 * from ever seeing more digits than the bound has (SIZE_PATTERN allows no leading zeros).
 */
export function sizeMaxRule(max: number): string {
  const bounded = (digits: string, bound: bigint, suffixLength: number) =>
    `(size(self) <= ${bound.toString().length + suffixLength} && int(${digits}) <= ${bound})`;
  let rule = bounded('self', BigInt(max), 0);
  for (const [suffix, shift] of [...SIZE_SUFFIX_SHIFTS].reverse())
    rule = `self.endsWith('${suffix}') ? ${bounded('self.substring(0, size(self) - 2)', BigInt(max) >> BigInt(shift), 2)} : ${rule}`;
  return `!self.matches('${SIZE_PATTERN}') || (${rule})`;
}

/** The node configuration's sizes must be ones the agent can apply (MAX_NODE_SIZE_BYTES). */
const nodeSizeMax: CelRule = {
  id: 'size-max',
  rule: sizeMaxRule(MAX_NODE_SIZE_BYTES),
  message: `must be at most ${MAX_NODE_SIZE_BYTES} bytes (2^53-1, about 8 PiB, e.g. 8191Ti): the largest size the node agent applies`,
};

/** A size field. The format is a CEL rule rather than `pattern`, so the error reads as a sentence. */
const size = (description: string, extra: Partial<Schema> = {}): Schema => ({
  type: 'string',
  maxLength: 24,
  description,
  ...extra,
  'x-kubernetes-validations': [
    {
      id: 'size-format',
      rule: `self.matches('${SIZE_PATTERN}')`,
      message:
        'must be a size: whole bytes or an integer with Ki, Mi, Gi or Ti (e.g. 28Gi); decimal units (28G) and fractions (7.5Gi) are not accepted',
    },
    ...(extra['x-kubernetes-validations'] ?? []),
  ],
});

const condition: Schema = {
  type: 'object',
  required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'],
  properties: {
    type: { type: 'string', maxLength: 316, description: 'Condition type, e.g. Ready.' },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    lastTransitionTime: { type: 'string', format: 'date-time' },
    reason: { type: 'string', maxLength: 1024, description: 'CamelCase reason.' },
    message: { type: 'string', maxLength: 32768 },
  },
};

const conditions: Schema = {
  type: 'array',
  maxItems: 16,
  items: condition,
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
};

/** A metav1.LabelSelector. An empty selector matches everything. */
export const labelSelectorSchema = (what: string): Schema => ({
  type: 'object',
  description: `Label selector over ${what}. An empty selector ({}) matches all ${what}.`,
  properties: {
    matchLabels: {
      type: 'object',
      maxProperties: 64,
      additionalProperties: { type: 'string', maxLength: 63 },
    },
    matchExpressions: {
      type: 'array',
      maxItems: 32,
      items: {
        type: 'object',
        required: ['key', 'operator'],
        properties: {
          key: { type: 'string', minLength: 1, maxLength: 317 },
          operator: { type: 'string', enum: [...SELECTOR_OPERATORS] },
          values: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 63 } },
        },
        'x-kubernetes-validations': [
          {
            id: 'selector-values',
            rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
            message: 'values must be non-empty when operator is In or NotIn, and empty when it is Exists or DoesNotExist',
          },
        ],
      },
    },
  },
});

/** Fields shared by EmuvPolicy.spec and EmuvNode.spec: what the agent applies on a node. */
const nodeConfigProperties = (withDefaults: boolean): Record<string, Schema> => {
  const d = (value: unknown): Partial<Schema> => (withDefaults ? { default: value } : {});
  return {
    hostSpillBudget: {
      type: 'string',
      maxLength: 24,
      description:
        'Host RAM the node may lend to spilled GPU memory: Auto (min(50% of node memory, node memory - 8Gi); auto too), ' +
        `bytes (e.g. 64Gi) or a percentage of node memory from 0% to ${MAX_SPILL_PERCENT}% (e.g. 25%). Added to usable VRAM in the node capacity ` +
        'emuv.io/vram-virtual. Defaults to Auto.',
      ...d(DEFAULTS.hostSpillBudget),
      'x-kubernetes-validations': [
        {
          id: 'spill-format',
          rule: `self.matches('${SIZE_OR_PERCENT_PATTERN}')`,
          message: 'must be Auto, a size (e.g. 64Gi) or a percentage of node memory (e.g. 25%)',
        },
        {
          id: 'spill-percent-max',
          rule: `!self.matches('^[0-9]+%$') || int(self.substring(0, size(self) - 1)) <= ${MAX_SPILL_PERCENT}`,
          message: `hostSpillBudget ${SPILL_PERCENT_REASON}`,
        },
        nodeSizeMax,
      ],
    },
    vramReservePerGpu: size('VRAM kept back on each GPU for CUDA contexts and the driver; not offered to pods. Defaults to 512Mi.', {
      ...d(DEFAULTS.vramReservePerGpu),
      'x-kubernetes-validations': [nodeSizeMax],
    }),
    slotsPerGpu: {
      type: 'integer',
      format: 'int32',
      minimum: 1,
      maximum: MAX_SLOTS_PER_GPU,
      description: 'emuv.io/vgpu slots per physical GPU: how many containers may share one GPU. Defaults to 16.',
      ...d(DEFAULTS.slotsPerGpu),
    },
    vramMode: {
      type: 'string',
      enum: [...VRAM_MODE_VALUES],
      description:
        'Fill: first come, first served; a container spills when its share or the card is full. Fixed: each slot ' +
        'gets VRAM / slotsPerGpu and spills beyond it. Defaults to Fill.',
      ...d(DEFAULTS.vramMode),
    },
    spillBackend: {
      type: 'string',
      enum: [...SPILL_BACKEND_VALUES],
      description:
        'Auto: VMM host memory, zero-copy pinned memory where VMM is unavailable. Pinned: always pinned host memory. ' +
        'Managed: CUDA managed memory (opt-in; page faults). Defaults to Auto.',
      ...d(DEFAULTS.spillBackend),
    },
    allocation: {
      type: 'string',
      enum: [...ALLOCATION_VALUES],
      description:
        'How the node serves virtual GPU memory. DevicePlugin: the extended resources emuv.io/vram-virtual and ' +
        'emuv.io/vgpu (the admission webhook adds the slot). DRA: Dynamic Resource Allocation (resource.k8s.io/v1, ' +
        'Kubernetes 1.34 or later, a CDI-capable runtime): the node publishes ResourceSlices of the gpu.emuv.io ' +
        'DeviceClass, and the webhook turns a container limit of emuv.io/vram-virtual into a ResourceClaim. Defaults ' +
        'to DevicePlugin.',
      ...d(DEFAULTS.allocation),
    },
  };
};

/**
 * Defaults of EmuvPolicy.spec (and of EmuvNode.spec for a node no policy selects). The CRD `default:`
 * values are generated from this object.
 */
export const DEFAULTS = {
  priority: 0,
  hostSpillBudget: 'Auto',
  vramReservePerGpu: '512Mi',
  slotsPerGpu: 16,
  vramMode: 'Fill',
  spillBackend: 'Auto',
  allocation: DEFAULT_ALLOCATION,
  podMemory: { mode: 'Request', percentOfLimit: 100 },
} as const;

export const policySpecSchema: Schema = {
  type: 'object',
  description: 'How emuv behaves on the nodes this policy selects, and who may ask for virtual GPU memory.',
  properties: {
    nodeSelector: {
      ...labelSelectorSchema('nodes carrying the emuv.io/gpu.count label'),
      default: {},
    },
    priority: {
      type: 'integer',
      format: 'int32',
      minimum: 0,
      maximum: 1000000,
      description:
        'When several policies select a node, the highest priority wins. Equal priorities on one node are a ' +
        'conflict: the node keeps its current configuration until an admin resolves it. Defaults to 0.',
      default: DEFAULTS.priority,
    },
    ...nodeConfigProperties(true),
    maxPerContainer: size('Largest emuv.io/vram-virtual one container may ask for (e.g. 48Gi). Unset: no limit beyond node capacity.', {
      'x-kubernetes-validations': [
        {
          id: 'max-positive',
          rule: "self != '0'",
          message: 'maxPerContainer must be greater than zero; leave it unset for no per-container limit',
        },
      ],
    }),
    namespaceSelector: labelSelectorSchema('namespaces whose pods may ask for emuv.io/vram-virtual'),
    podMemory: {
      type: 'object',
      description:
        'How pod memory is reserved for spill. Driver-allocated spill memory is not charged to the memory ' +
        'cgroup, so the webhook adds percentOfLimit % of each container emuv.io/vram-virtual limit to its memory ' +
        'request (and to its memory limit when one is set) in mode Request. Mode None adds nothing: reserve the ' +
        'spill budget on the node instead (kubelet systemReserved).',
      default: { ...DEFAULTS.podMemory },
      properties: {
        mode: { type: 'string', enum: [...POD_MEMORY_MODE_VALUES], default: DEFAULTS.podMemory.mode },
        percentOfLimit: {
          type: 'integer',
          format: 'int32',
          minimum: 0,
          maximum: 100,
          default: DEFAULTS.podMemory.percentOfLimit,
        },
      },
      'x-kubernetes-validations': [
        {
          id: 'podmemory-percent',
          rule: "self.mode != 'Request' || self.percentOfLimit > 0",
          message: 'podMemory.percentOfLimit must be greater than zero in mode Request; use mode None to reserve nothing',
        },
      ],
    },
  },
};

export const policyStatusSchema: Schema = {
  type: 'object',
  properties: {
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    matchedNodes: { type: 'integer', format: 'int32', minimum: 0, description: 'Nodes the selector matches.' },
    appliedNodes: { type: 'integer', format: 'int32', minimum: 0, description: 'Nodes where this policy is in effect.' },
    conflictCount: { type: 'integer', format: 'int32', minimum: 0, description: 'Number of conflicts, all listed or not.' },
    conflicts: {
      type: 'array',
      maxItems: 32,
      description: 'Up to 32 conflicts. Tie: same priority as another policy on a node. Shadowed: a higher priority wins.',
      items: {
        type: 'object',
        required: ['node', 'type', 'policies'],
        properties: {
          node: { type: 'string', maxLength: 253 },
          type: { type: 'string', enum: ['Tie', 'Shadowed'] },
          policies: { type: 'array', maxItems: 16, items: { type: 'string', maxLength: 253 } },
        },
      },
    },
    conditions,
  },
};

export const nodeSpecSchema: Schema = {
  type: 'object',
  description: 'Effective configuration of one GPU node, written by the operator, applied live by the agent.',
  required: ['hostSpillBudget', 'vramReservePerGpu', 'slotsPerGpu', 'vramMode', 'spillBackend'],
  properties: {
    ...nodeConfigProperties(false),
    policy: { type: 'string', maxLength: 253, description: 'The EmuvPolicy in effect; unset: defaults.' },
    conflictingPolicies: {
      type: 'array',
      maxItems: 16,
      items: { type: 'string', maxLength: 253 },
      description: 'Set while policies tie on this node; the previous configuration is kept until resolved.',
    },
  },
};

const gpuSchema: Schema = {
  type: 'object',
  required: ['index', 'pciAddress', 'vram'],
  properties: {
    index: { type: 'integer', format: 'int32', minimum: 0 },
    uuid: { type: 'string', maxLength: 64 },
    model: { type: 'string', maxLength: 128 },
    pciAddress: { type: 'string', pattern: '^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]$' },
    numaNode: { type: 'integer', format: 'int32', minimum: -1 },
    vram: size('Physical VRAM.'),
    link: {
      type: 'object',
      properties: {
        generation: { type: 'integer', format: 'int32', minimum: 1, maximum: 8 },
        width: { type: 'integer', format: 'int32', minimum: 1, maximum: 32 },
      },
    },
  },
};

export const nodeStatusSchema: Schema = {
  type: 'object',
  description: 'Written by the agent.',
  properties: {
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    gpuCount: { type: 'integer', format: 'int32', minimum: 0 },
    gpus: { type: 'array', maxItems: 64, items: gpuSchema },
    capacity: {
      type: 'object',
      properties: {
        vram: size('Usable VRAM over all GPUs (VRAM minus reserve).'),
        spillBudget: size('Host spill budget in bytes.'),
        virtual: size('Published emuv.io/vram-virtual (vram + spillBudget).'),
        slots: { type: 'integer', format: 'int32', minimum: 0 },
      },
    },
    committed: size('Sum of emuv.io/vram-virtual limits of the containers on this node.'),
    used: size('Virtual memory in use (VRAM + spilled).'),
    spillInUse: size('Host RAM currently holding spilled GPU memory.'),
    summary: {
      type: 'object',
      description: 'The sizes above for people (kubectl get): rounded to one decimal of the largest binary unit, e.g. 7.5Gi.',
      properties: Object.fromEntries(SUMMARY_FIELDS.map((f) => [f, { type: 'string', maxLength: 16 }])),
    },
    conditions,
  },
};

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export const policyColumns: PrinterColumn[] = [
  { name: 'Priority', type: 'integer', jsonPath: '.spec.priority' },
  { name: 'Matched', type: 'integer', jsonPath: '.status.matchedNodes', description: 'Nodes selected' },
  { name: 'Applied', type: 'integer', jsonPath: '.status.appliedNodes', description: 'Nodes where in effect' },
  { name: 'Conflicts', type: 'integer', jsonPath: '.status.conflictCount' },
  { name: 'Allocation', type: 'string', jsonPath: '.spec.allocation', priority: 1 },
  { name: 'Spill budget', type: 'string', jsonPath: '.spec.hostSpillBudget', priority: 1 },
  { name: 'Reserve', type: 'string', jsonPath: '.spec.vramReservePerGpu', priority: 1 },
  { name: 'Max/container', type: 'string', jsonPath: '.spec.maxPerContainer', priority: 1 },
  { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
];

export const nodeColumns: PrinterColumn[] = [
  { name: 'GPUs', type: 'integer', jsonPath: '.status.gpuCount' },
  { name: 'VRAM', type: 'string', jsonPath: '.status.summary.vram', description: 'Usable VRAM' },
  { name: 'Virtual', type: 'string', jsonPath: '.status.summary.virtual', description: 'Published capacity' },
  { name: 'Committed', type: 'string', jsonPath: '.status.summary.committed' },
  { name: 'Spill', type: 'string', jsonPath: '.status.summary.spillInUse', description: 'Spill in use' },
  { name: 'Spill budget', type: 'string', jsonPath: '.status.summary.spillBudget', priority: 1 },
  { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason' },
  { name: 'Policy', type: 'string', jsonPath: '.spec.policy', priority: 1 },
  { name: 'Allocation', type: 'string', jsonPath: '.spec.allocation', priority: 1 },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
];

/**
 * Strict parsing of `emuv.io/v1alpha1` objects: structural defaulting and validation driven by the same
 * schema objects the CRDs are generated from, plus a TypeScript twin of every CEL rule (same message).
 * Unknown fields are errors here (the apiserver prunes them; anything we parse should never carry them).
 */
import {
  MAX_NODE_SIZE_BYTES,
  MAX_SPILL_PERCENT,
  SIZE_SUFFIX_SHIFTS,
  SIZE_OR_PERCENT_PATTERN,
  SIZE_PATTERN,
  nodeSpecSchema,
  policySpecSchema,
  API_VERSION,
  KIND_NODE,
  KIND_POLICY,
} from './schema.ts';
import type { CelRule, Schema } from './schema.ts';
import type { EmuvNode, EmuvPolicy, EmuvPolicySpec, ObjectMeta } from './types.ts';

export type Parsed<T> = { ok: true; value: T } | { ok: false; errors: string[] };

type CelTwin = (self: unknown) => boolean;

const SIZE_RE = new RegExp(SIZE_PATTERN);
const SIZE_OR_PERCENT_RE = new RegExp(SIZE_OR_PERCENT_PATTERN);

/** TypeScript versions of the CEL rules in `schema.ts`, keyed by rule id (run only on structurally valid values). */
export const CEL_TWINS: Record<string, CelTwin> = {
  'size-format': (self) => SIZE_RE.test(self as string),
  'spill-format': (self) => SIZE_OR_PERCENT_RE.test(self as string),
  'selector-values': (self) => {
    const r = self as { operator: string; values?: string[] };
    return r.operator === 'In' || r.operator === 'NotIn' ? (r.values?.length ?? 0) > 0 : (r.values?.length ?? 0) === 0;
  },
  'spill-percent-max': (self) => !/^[0-9]+%$/.test(self as string) || Number((self as string).slice(0, -1)) <= MAX_SPILL_PERCENT,
  'max-positive': (self) => self !== '0',
  'size-max': (self) => {
    const m = SIZE_RE.exec(self as string);
    if (!m) return true;
    const shift = SIZE_SUFFIX_SHIFTS.find(([suffix]) => suffix === m[2])?.[1] ?? 0;
    return BigInt(m[1]!) << BigInt(shift) <= BigInt(MAX_NODE_SIZE_BYTES);
  },
  'podmemory-percent': (self) => {
    const p = self as { mode: string; percentOfLimit: number };
    return p.mode !== 'Request' || p.percentOfLimit > 0;
  },
};

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Returns a copy of `value` with schema defaults filled in, as the apiserver does before validation. */
export function applyDefaults(schema: Schema, value: unknown): unknown {
  if (schema.type === 'object' && isPlainObject(value)) {
    const out: Record<string, unknown> = { ...value };
    for (const [name, prop] of Object.entries(schema.properties ?? {})) {
      if (out[name] === undefined && prop.default !== undefined) out[name] = structuredClone(prop.default);
      if (out[name] !== undefined) out[name] = applyDefaults(prop, out[name]);
    }
    if (schema.additionalProperties) {
      for (const k of Object.keys(out)) {
        if (!(schema.properties && k in schema.properties)) out[k] = applyDefaults(schema.additionalProperties, out[k]);
      }
    }
    return out;
  }
  if (schema.type === 'array' && Array.isArray(value) && schema.items) {
    return value.map((v) => applyDefaults(schema.items!, v));
  }
  return value;
}

/** Validates `value` against `schema`; returns human-readable errors prefixed with their field path. */
export function validateSchema(schema: Schema, value: unknown, path: string): string[] {
  const errors: string[] = [];
  const err = (msg: string) => errors.push(`${path}: ${msg}`);
  switch (schema.type) {
    case 'object': {
      if (!isPlainObject(value)) return [`${path}: must be an object`];
      const props = schema.properties ?? {};
      for (const req of schema.required ?? []) if (value[req] === undefined) err(`field ${req} is required`);
      const keys = Object.keys(value);
      if (schema.maxProperties !== undefined && keys.length > schema.maxProperties) {
        err(`must have at most ${schema.maxProperties} entries`);
      }
      for (const k of keys) {
        const v = value[k];
        if (k in props) {
          if (v !== undefined) errors.push(...validateSchema(props[k]!, v, `${path}.${k}`));
        } else if (schema.additionalProperties) {
          errors.push(...validateSchema(schema.additionalProperties, v, `${path}.${k}`));
        } else if (!schema['x-kubernetes-preserve-unknown-fields']) {
          err(`unknown field "${k}"`);
        }
      }
      break;
    }
    case 'array': {
      if (!Array.isArray(value)) return [`${path}: must be a list`];
      if (schema.maxItems !== undefined && value.length > schema.maxItems) err(`must have at most ${schema.maxItems} items`);
      if (schema.items) value.forEach((v, i) => errors.push(...validateSchema(schema.items!, v, `${path}[${i}]`)));
      break;
    }
    case 'string': {
      if (typeof value !== 'string') return [`${path}: must be a string`];
      if (schema.enum && !schema.enum.includes(value)) {
        return [`${path}: must be one of ${schema.enum.join(', ')} (got "${value}")`];
      }
      if (schema.minLength !== undefined && value.length < schema.minLength) err(`must not be empty`);
      if (schema.maxLength !== undefined && value.length > schema.maxLength) {
        return [`${path}: must be at most ${schema.maxLength} characters`];
      }
      if (schema.pattern && !new RegExp(schema.pattern).test(value)) {
        return [`${path}: "${value}" does not match ${describePattern(schema.pattern)}`];
      }
      break;
    }
    case 'integer': {
      if (typeof value !== 'number' || !Number.isInteger(value)) return [`${path}: must be an integer`];
      if (schema.minimum !== undefined && value < schema.minimum) err(`must be at least ${schema.minimum}`);
      if (schema.maximum !== undefined && value > schema.maximum) err(`must be at most ${schema.maximum}`);
      break;
    }
    case 'boolean':
      if (typeof value !== 'boolean') return [`${path}: must be true or false`];
      break;
    default:
      break;
  }
  // Like the apiserver, CEL rules only run on values that passed the structural checks.
  if (errors.length === 0) {
    for (const rule of schema['x-kubernetes-validations'] ?? []) {
      if (!runTwin(rule, value)) errors.push(`${path}: ${rule.message}`);
    }
  }
  return errors;
}

function runTwin(rule: CelRule, value: unknown): boolean {
  const twin = CEL_TWINS[rule.id];
  if (!twin) throw new Error(`failed to validate: CEL rule ${rule.id} has no TypeScript twin`);
  return twin(value);
}

function describePattern(pattern: string): string {
  if (pattern.includes('%')) return 'Auto, a size (bytes or an integer with Ki, Mi, Gi, Ti) or a percentage like 25%';
  if (pattern.includes('Ki|Mi')) return 'a size: bytes or an integer with Ki, Mi, Gi or Ti (e.g. 28Gi)';
  return `pattern ${pattern}`;
}

function parseMeta(raw: unknown, errors: string[]): ObjectMeta | undefined {
  if (!isPlainObject(raw)) {
    errors.push('metadata: must be an object');
    return undefined;
  }
  if (typeof raw.name !== 'string' || raw.name === '') {
    errors.push('metadata.name: is required');
    return undefined;
  }
  return raw as unknown as ObjectMeta;
}

function parseObject<T>(raw: unknown, kind: string, specSchema: Schema, defaults: boolean): Parsed<T> {
  if (!isPlainObject(raw)) return { ok: false, errors: [`${kind}: must be an object`] };
  const errors: string[] = [];
  if (raw.apiVersion !== API_VERSION) {
    errors.push(`apiVersion: must be ${API_VERSION} (got ${JSON.stringify(raw.apiVersion)})`);
  }
  if (raw.kind !== kind) errors.push(`kind: must be ${kind} (got ${JSON.stringify(raw.kind)})`);
  const metadata = parseMeta(raw.metadata, errors);
  const spec = defaults ? applyDefaults(specSchema, raw.spec ?? {}) : raw.spec;
  errors.push(...validateSchema(specSchema, spec, 'spec'));
  if (errors.length > 0 || !metadata) return { ok: false, errors };
  const value: Record<string, unknown> = { apiVersion: API_VERSION, kind, metadata, spec };
  if (raw.status !== undefined) value.status = raw.status;
  return { ok: true, value: value as T };
}

/** Parses and defaults an EmuvPolicy. The status is carried as is (the operator rebuilds it). */
export function parseEmuvPolicy(raw: unknown): Parsed<EmuvPolicy> {
  return parseObject<EmuvPolicy>(raw, KIND_POLICY, policySpecSchema, true);
}

/** Parses an EmuvNode (spec has no defaults: the operator always writes it whole). */
export function parseEmuvNode(raw: unknown): Parsed<EmuvNode> {
  return parseObject<EmuvNode>(raw, KIND_NODE, nodeSpecSchema, false);
}

/** Defaulted policy spec from a partial one (throws on invalid input; for tests and builders). */
export function defaultedPolicySpec(partial: Partial<EmuvPolicySpec> = {}): EmuvPolicySpec {
  const spec = applyDefaults(policySpecSchema, partial);
  const errors = validateSchema(policySpecSchema, spec, 'spec');
  if (errors.length > 0) throw new Error(`invalid EmuvPolicy spec: ${errors.join('; ')}`);
  return spec as EmuvPolicySpec;
}

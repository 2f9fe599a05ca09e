/** Builds the two CustomResourceDefinitions from `schema.ts`; `deploy/crds/*.yaml` must equal this output. */
import { stringify } from 'yaml';
import {
  GROUP,
  KIND_NODE,
  KIND_POLICY,
  PLURAL_NODE,
  PLURAL_POLICY,
  SCHEMA_REVISION,
  VERSION,
  nodeColumns,
  nodeSpecSchema,
  nodeStatusSchema,
  policyColumns,
  policySpecSchema,
  policyStatusSchema,
} from './schema.ts';
import type { PrinterColumn, Schema } from './schema.ts';

/** Removes TypeScript-only keys (the CEL rule ids) so the YAML is a valid CRD schema. */
export function toOpenApi(schema: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'properties' || k === 'additionalProperties' || k === 'items') continue;
    if (k === 'x-kubernetes-validations') {
      out[k] = (v as Schema['x-kubernetes-validations'])!.map(({ id: _id, ...rule }) => rule);
    } else {
      out[k] = v;
    }
  }
  if (schema.properties) {
    out.properties = Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, toOpenApi(v)]));
  }
  if (schema.additionalProperties) out.additionalProperties = toOpenApi(schema.additionalProperties);
  if (schema.items) out.items = toOpenApi(schema.items);
  return out;
}

function crd(
  kind: string,
  plural: string,
  singular: string,
  shortNames: string[],
  spec: Schema,
  status: Schema,
  columns: PrinterColumn[],
  description: string,
  specRequired: boolean,
): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${plural}.${GROUP}`,
      annotations: { 'emuv.io/schema-revision': String(SCHEMA_REVISION) },
      labels: { 'app.kubernetes.io/part-of': 'emuv' },
    },
    spec: {
      group: GROUP,
      scope: 'Cluster',
      names: { kind, listKind: `${kind}List`, plural, singular, shortNames, categories: ['emuv'] },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: columns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description,
              required: specRequired ? ['spec'] : undefined,
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: toOpenApi(spec),
                status: toOpenApi(status),
              },
            },
          },
        },
      ],
    },
  };
}

export function policyCrd(): Record<string, unknown> {
  return crd(
    KIND_POLICY,
    PLURAL_POLICY,
    'emuvpolicy',
    ['evp'],
    policySpecSchema,
    policyStatusSchema,
    policyColumns,
    'EmuvPolicy configures emuv on the GPU nodes it selects and says who may ask for virtual GPU memory.',
    false,
  );
}

export function nodeCrd(): Record<string, unknown> {
  return crd(
    KIND_NODE,
    PLURAL_NODE,
    'emuvnode',
    ['evn'],
    nodeSpecSchema,
    nodeStatusSchema,
    nodeColumns,
    'EmuvNode is one GPU node: spec is the effective configuration (operator), status what the agent sees.',
    true,
  );
}

const HEADER = '# Generated from operator/api/schema.ts by operator/api/crd-write.ts; do not edit by hand.\n';

/** The YAML text committed under deploy/crds/. */
export function crdYaml(obj: Record<string, unknown>): string {
  return HEADER + stringify(JSON.parse(JSON.stringify(obj)), { lineWidth: 0 });
}

export const CRD_FILES = {
  [`emuv.io_${PLURAL_POLICY}.yaml`]: policyCrd,
  [`emuv.io_${PLURAL_NODE}.yaml`]: nodeCrd,
} as const;

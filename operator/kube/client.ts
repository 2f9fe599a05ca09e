/**
 * The API ports implemented with @kubernetes/client-node 2.x. Patch content types are set explicitly
 * (client-node does not infer them from the body): JSON Patch for EmuvNode spec, policy status and the
 * webhook caBundle.
 */
import {
  AdmissionregistrationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  ResourceV1Api,
  V1MicroTime,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { KubeConfig, V1Lease, V1ResourceClaimTemplate, V1Secret } from '@kubernetes/client-node';
import { GROUP, PLURAL_NODE, PLURAL_POLICY, VERSION } from '../api/schema.ts';
import type { EmuvNode } from '../api/types.ts';
import { isNotFound } from '../../common/kube/errors.ts';
import type { JsonPatchOp } from '../../common/kube/json-patch.ts';
import type {
  CertApi,
  ClaimTemplateApi,
  CoreEvent,
  EmuvApi,
  Lease,
  LeaseApi,
  ResourceClaimTemplate,
  Secret,
  WebhookConfig,
} from './api.ts';

export const FIELD_MANAGER = 'emuv-operator';

const jsonPatch = () => setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);

async function orUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export class KubeClient implements EmuvApi, LeaseApi, CertApi, ClaimTemplateApi {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;
  private readonly admission: AdmissionregistrationV1Api;
  private readonly resource: ResourceV1Api;

  constructor(kc: KubeConfig) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.coordination = kc.makeApiClient(CoordinationV1Api);
    this.admission = kc.makeApiClient(AdmissionregistrationV1Api);
    this.resource = kc.makeApiClient(ResourceV1Api);
  }

  async createEmuvNode(obj: EmuvNode): Promise<EmuvNode> {
    return (await this.custom.createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL_NODE,
      body: obj,
      fieldManager: FIELD_MANAGER,
    })) as EmuvNode;
  }

  async patchEmuvNode(name: string, ops: JsonPatchOp[]): Promise<EmuvNode> {
    return (await this.custom.patchClusterCustomObject(
      { group: GROUP, version: VERSION, plural: PLURAL_NODE, name, body: ops, fieldManager: FIELD_MANAGER },
      jsonPatch(),
    )) as EmuvNode;
  }

  async deleteEmuvNode(name: string): Promise<void> {
    await this.custom.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL_NODE, name });
  }

  async patchEmuvPolicyStatus(name: string, ops: JsonPatchOp[]): Promise<void> {
    await this.custom.patchClusterCustomObjectStatus(
      { group: GROUP, version: VERSION, plural: PLURAL_POLICY, name, body: ops, fieldManager: FIELD_MANAGER },
      jsonPatch(),
    );
  }

  async createEvent(ev: CoreEvent): Promise<void> {
    await this.core.createNamespacedEvent({
      namespace: ev.metadata.namespace,
      body: {
        ...ev,
        firstTimestamp: new Date(ev.firstTimestamp),
        lastTimestamp: new Date(ev.lastTimestamp),
      } as never,
    });
  }

  async getLease(namespace: string, name: string): Promise<Lease | undefined> {
    const l = await orUndefined(this.coordination.readNamespacedLease({ name, namespace }));
    return l ? fromV1Lease(l) : undefined;
  }

  async createLease(lease: Lease): Promise<Lease> {
    return fromV1Lease(await this.coordination.createNamespacedLease({ namespace: lease.metadata.namespace, body: toV1Lease(lease) }));
  }

  async replaceLease(lease: Lease): Promise<Lease> {
    return fromV1Lease(
      await this.coordination.replaceNamespacedLease({
        name: lease.metadata.name,
        namespace: lease.metadata.namespace,
        body: toV1Lease(lease),
      }),
    );
  }

  async getSecret(namespace: string, name: string): Promise<Secret | undefined> {
    const s = await orUndefined(this.core.readNamespacedSecret({ name, namespace }));
    return s ? fromV1Secret(s) : undefined;
  }

  async createSecret(secret: Secret): Promise<Secret> {
    return fromV1Secret(await this.core.createNamespacedSecret({ namespace: secret.metadata.namespace, body: secret as V1Secret }));
  }

  async replaceSecret(secret: Secret): Promise<Secret> {
    return fromV1Secret(
      await this.core.replaceNamespacedSecret({
        name: secret.metadata.name,
        namespace: secret.metadata.namespace,
        body: secret as V1Secret,
      }),
    );
  }

  async getMutatingWebhookConfiguration(name: string): Promise<WebhookConfig | undefined> {
    const c = await orUndefined(this.admission.readMutatingWebhookConfiguration({ name }));
    if (!c) return undefined;
    return {
      metadata: { name, ...(c.metadata?.resourceVersion ? { resourceVersion: c.metadata.resourceVersion } : {}) },
      webhooks: (c.webhooks ?? []).map((w) => ({
        name: w.name,
        clientConfig: { ...(w.clientConfig.caBundle ? { caBundle: w.clientConfig.caBundle } : {}) },
      })),
    };
  }

  async patchMutatingWebhookConfiguration(name: string, ops: JsonPatchOp[]): Promise<void> {
    await this.admission.patchMutatingWebhookConfiguration({ name, body: ops, fieldManager: FIELD_MANAGER }, jsonPatch());
  }

  /**
   * Through the typed ResourceV1Api: every field the template uses is in client-node 2.0.1's models
   * (V1ExactDeviceRequest.capacity, V1CapacityRequirements.requests), so its serializer, which writes only
   * the keys a model knows, sends all of it (client.test.ts checks the body on the wire).
   */
  async createResourceClaimTemplate(template: ResourceClaimTemplate): Promise<void> {
    const body: V1ResourceClaimTemplate = { apiVersion: 'resource.k8s.io/v1', kind: 'ResourceClaimTemplate', ...template };
    await this.resource.createNamespacedResourceClaimTemplate({
      namespace: template.metadata.namespace,
      body,
      fieldManager: FIELD_MANAGER,
    });
  }
}

function toV1Lease(l: Lease): V1Lease {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: l.metadata,
    spec: {
      ...(l.spec.holderIdentity !== undefined ? { holderIdentity: l.spec.holderIdentity } : {}),
      ...(l.spec.leaseDurationSeconds !== undefined ? { leaseDurationSeconds: l.spec.leaseDurationSeconds } : {}),
      ...(l.spec.leaseTransitions !== undefined ? { leaseTransitions: l.spec.leaseTransitions } : {}),
      // MicroTime fields: the apiserver wants exactly six fractional digits, which V1MicroTime writes.
      ...(l.spec.acquireTime ? { acquireTime: new V1MicroTime(l.spec.acquireTime) } : {}),
      ...(l.spec.renewTime ? { renewTime: new V1MicroTime(l.spec.renewTime) } : {}),
    },
  };
}

function iso(v: unknown): string | undefined {
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'string') return v;
  return undefined;
}

function fromV1Lease(l: V1Lease): Lease {
  const spec: Lease['spec'] = {};
  if (l.spec?.holderIdentity) spec.holderIdentity = l.spec.holderIdentity;
  if (l.spec?.leaseDurationSeconds !== undefined) spec.leaseDurationSeconds = l.spec.leaseDurationSeconds;
  if (l.spec?.leaseTransitions !== undefined) spec.leaseTransitions = l.spec.leaseTransitions;
  const acquire = iso(l.spec?.acquireTime);
  const renew = iso(l.spec?.renewTime);
  if (acquire) spec.acquireTime = acquire;
  if (renew) spec.renewTime = renew;
  return {
    metadata: {
      name: l.metadata?.name ?? '',
      namespace: l.metadata?.namespace ?? '',
      ...(l.metadata?.resourceVersion ? { resourceVersion: l.metadata.resourceVersion } : {}),
    },
    spec,
  };
}

function fromV1Secret(s: V1Secret): Secret {
  const out: Secret = {
    metadata: {
      name: s.metadata?.name ?? '',
      namespace: s.metadata?.namespace ?? '',
      ...(s.metadata?.resourceVersion ? { resourceVersion: s.metadata.resourceVersion } : {}),
    },
  };
  if (s.type) out.type = s.type;
  if (s.data) out.data = s.data;
  return out;
}

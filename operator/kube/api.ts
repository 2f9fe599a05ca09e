/**
 * The operator's narrow view of the Kubernetes API. `client.ts` implements it with @kubernetes/client-node
 * (content types set per patch kind); test/fakes/operator-kube.ts records every call, so tests assert on
 * the actions a controller takes rather than on its internals.
 */
import type { JsonPatchOp } from '../../common/kube/json-patch.ts';
import type { EmuvNode } from '../api/types.ts';

export interface ObjectReference {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  uid?: string;
}

export interface CoreEvent {
  metadata: { generateName: string; namespace: string };
  involvedObject: ObjectReference;
  reason: string;
  message: string;
  type: 'Normal' | 'Warning';
  source: { component: string };
  reportingComponent: string;
  reportingInstance: string;
  action: string;
  firstTimestamp: string;
  lastTimestamp: string;
  eventTime?: string;
  count: number;
}

export interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface Secret {
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  type?: string;
  /** base64 values, as on the wire. */
  data?: Record<string, string>;
}

export interface WebhookConfig {
  metadata: { name: string; resourceVersion?: string };
  webhooks?: Array<{ name: string; clientConfig?: { caBundle?: string } }>;
}

export interface EmuvApi {
  createEmuvNode(obj: EmuvNode): Promise<EmuvNode>;
  /** JSON Patch (application/json-patch+json) on the main resource. */
  patchEmuvNode(name: string, ops: JsonPatchOp[]): Promise<EmuvNode>;
  deleteEmuvNode(name: string): Promise<void>;
  /** JSON Patch on the status subresource. */
  patchEmuvPolicyStatus(name: string, ops: JsonPatchOp[]): Promise<void>;
  createEvent(ev: CoreEvent): Promise<void>;
}

export interface LeaseApi {
  /** undefined when absent (404). */
  getLease(namespace: string, name: string): Promise<Lease | undefined>;
  createLease(lease: Lease): Promise<Lease>;
  /** Update with optimistic concurrency (metadata.resourceVersion); 409 on a lost race. */
  replaceLease(lease: Lease): Promise<Lease>;
}

export interface CertApi {
  getSecret(namespace: string, name: string): Promise<Secret | undefined>;
  createSecret(secret: Secret): Promise<Secret>;
  replaceSecret(secret: Secret): Promise<Secret>;
  getMutatingWebhookConfiguration(name: string): Promise<WebhookConfig | undefined>;
  patchMutatingWebhookConfiguration(name: string, ops: JsonPatchOp[]): Promise<void>;
}

/** One device request of a claim: exactly `count` devices of a class, each with a capacity request. */
export interface ExactDeviceRequest {
  name: string;
  exactly: {
    deviceClassName: string;
    allocationMode: 'ExactCount';
    count: number;
    capacity: { requests: Record<string, string> };
  };
}

/** A resource.k8s.io/v1 ResourceClaimTemplate as the webhook writes it (its JSON shape on the wire). */
export interface ResourceClaimTemplate {
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  spec: { spec: { devices: { requests: ExactDeviceRequest[] } } };
}

/** The admission webhook's one write: the claim templates its DRA conversion refers to. */
export interface ClaimTemplateApi {
  /** POST; rejects with the apiserver's error (code 409 when a template of that name exists). */
  createResourceClaimTemplate(template: ResourceClaimTemplate): Promise<void>;
}

/** In-memory fakes of the operator's API ports (operator/kube/api.ts); every call is recorded as an action. */
import type { JsonPatchOp } from '../../common/kube/json-patch.ts';
import type { EmuvNode } from '../../operator/api/types.ts';
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
} from '../../operator/kube/api.ts';
import { applyJsonPatch, HttpError } from './json-patch.ts';

export interface Action {
  verb: string;
  resource: string;
  name: string;
  body?: unknown;
}

export class FakeKube implements EmuvApi, LeaseApi, CertApi, ClaimTemplateApi {
  readonly actions: Action[] = [];
  readonly emuvNodes = new Map<string, EmuvNode>();
  readonly policyStatus = new Map<string, unknown>();
  readonly events: CoreEvent[] = [];
  readonly leases = new Map<string, Lease>();
  readonly secrets = new Map<string, Secret>();
  readonly webhookConfigs = new Map<string, WebhookConfig>();
  /** ResourceClaimTemplates by `namespace/name`. */
  readonly claimTemplates = new Map<string, ResourceClaimTemplate>();
  private rv = 1;
  /** When set, the next call whose `verb:resource` matches fails with this error. */
  failNext = new Map<string, Error>();

  private record(verb: string, resource: string, name: string, body?: unknown): void {
    const key = `${verb}:${resource}`;
    const err = this.failNext.get(key);
    this.actions.push(body === undefined ? { verb, resource, name } : { verb, resource, name, body: structuredClone(body) });
    if (err) {
      this.failNext.delete(key);
      throw err;
    }
  }

  /** Actions other than events, as `verb resource/name` strings. */
  summary(): string[] {
    return this.actions.filter((a) => a.resource !== 'events').map((a) => `${a.verb} ${a.resource}/${a.name}`);
  }

  async createEmuvNode(obj: EmuvNode): Promise<EmuvNode> {
    this.record('create', 'emuvnodes', obj.metadata.name, obj);
    if (this.emuvNodes.has(obj.metadata.name)) throw new HttpError(409, 'already exists');
    const stored = { ...structuredClone(obj), metadata: { ...obj.metadata, resourceVersion: String(this.rv++) } };
    this.emuvNodes.set(obj.metadata.name, stored);
    return stored;
  }

  async patchEmuvNode(name: string, ops: JsonPatchOp[]): Promise<EmuvNode> {
    this.record('patch', 'emuvnodes', name, ops);
    const cur = this.emuvNodes.get(name);
    if (!cur) throw new HttpError(404, 'not found');
    const next = applyJsonPatch(cur, ops);
    next.metadata.resourceVersion = String(this.rv++);
    this.emuvNodes.set(name, next);
    return next;
  }

  async deleteEmuvNode(name: string): Promise<void> {
    this.record('delete', 'emuvnodes', name);
    if (!this.emuvNodes.delete(name)) throw new HttpError(404, 'not found');
  }

  async patchEmuvPolicyStatus(name: string, ops: JsonPatchOp[]): Promise<void> {
    this.record('patch', 'emuvpolicies/status', name, ops);
    this.policyStatus.set(name, applyJsonPatch({ status: this.policyStatus.get(name) }, ops).status);
  }

  async createEvent(ev: CoreEvent): Promise<void> {
    this.record('create', 'events', ev.involvedObject.name, ev);
    this.events.push(ev);
  }

  async getLease(namespace: string, name: string): Promise<Lease | undefined> {
    this.record('get', 'leases', name);
    const l = this.leases.get(`${namespace}/${name}`);
    return l ? structuredClone(l) : undefined;
  }

  async createLease(lease: Lease): Promise<Lease> {
    this.record('create', 'leases', lease.metadata.name, lease);
    const key = `${lease.metadata.namespace}/${lease.metadata.name}`;
    if (this.leases.has(key)) throw new HttpError(409, 'already exists');
    const stored = structuredClone(lease);
    stored.metadata.resourceVersion = String(this.rv++);
    this.leases.set(key, stored);
    return structuredClone(stored);
  }

  async replaceLease(lease: Lease): Promise<Lease> {
    this.record('update', 'leases', lease.metadata.name, lease);
    const key = `${lease.metadata.namespace}/${lease.metadata.name}`;
    const cur = this.leases.get(key);
    if (!cur) throw new HttpError(404, 'not found');
    if (cur.metadata.resourceVersion !== lease.metadata.resourceVersion) throw new HttpError(409, 'conflict');
    const stored = structuredClone(lease);
    stored.metadata.resourceVersion = String(this.rv++);
    this.leases.set(key, stored);
    return structuredClone(stored);
  }

  async getSecret(namespace: string, name: string): Promise<Secret | undefined> {
    this.record('get', 'secrets', name);
    const s = this.secrets.get(`${namespace}/${name}`);
    return s ? structuredClone(s) : undefined;
  }

  async createSecret(secret: Secret): Promise<Secret> {
    this.record('create', 'secrets', secret.metadata.name);
    const key = `${secret.metadata.namespace}/${secret.metadata.name}`;
    if (this.secrets.has(key)) throw new HttpError(409, 'already exists');
    const stored = structuredClone(secret);
    stored.metadata.resourceVersion = String(this.rv++);
    this.secrets.set(key, stored);
    return structuredClone(stored);
  }

  async replaceSecret(secret: Secret): Promise<Secret> {
    this.record('update', 'secrets', secret.metadata.name);
    const key = `${secret.metadata.namespace}/${secret.metadata.name}`;
    const cur = this.secrets.get(key);
    if (!cur) throw new HttpError(404, 'not found');
    if (cur.metadata.resourceVersion !== secret.metadata.resourceVersion) throw new HttpError(409, 'conflict');
    const stored = structuredClone(secret);
    stored.metadata.resourceVersion = String(this.rv++);
    this.secrets.set(key, stored);
    return structuredClone(stored);
  }

  async getMutatingWebhookConfiguration(name: string): Promise<WebhookConfig | undefined> {
    this.record('get', 'mutatingwebhookconfigurations', name);
    const c = this.webhookConfigs.get(name);
    return c ? structuredClone(c) : undefined;
  }

  async patchMutatingWebhookConfiguration(name: string, ops: JsonPatchOp[]): Promise<void> {
    this.record('patch', 'mutatingwebhookconfigurations', name, ops);
    const cur = this.webhookConfigs.get(name);
    if (!cur) throw new HttpError(404, 'not found');
    this.webhookConfigs.set(name, applyJsonPatch(cur, ops));
  }

  async createResourceClaimTemplate(template: ResourceClaimTemplate): Promise<void> {
    this.record('create', 'resourceclaimtemplates', `${template.metadata.namespace}/${template.metadata.name}`, template);
    const key = `${template.metadata.namespace}/${template.metadata.name}`;
    if (this.claimTemplates.has(key)) throw new HttpError(409, 'already exists');
    this.claimTemplates.set(key, structuredClone(template));
  }
}

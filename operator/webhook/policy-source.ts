/**
 * The webhook's view of the policies: parsed from the informer cache, re-parsed only when an object
 * instance changes (the informer replaces objects on update), so an admission costs a few selector
 * matches and no API call.
 */
import type { EmuvPolicy } from '../api/types.ts';
import { parseEmuvPolicy } from '../api/validate.ts';
import type { Lister } from '../controller/reconcile.ts';
import type { PolicySource } from './admission.ts';
import { admissionPolicyFor } from './mutate-pod.ts';
import type { AdmissionPolicy } from './mutate-pod.ts';

export interface NamespaceLike {
  metadata?: { name?: string; labels?: Record<string, string> };
}

export class CachedPolicySource implements PolicySource {
  private readonly parsed = new WeakMap<object, EmuvPolicy | null>();
  private readonly policies: Lister<unknown>;
  private readonly namespaces: Lister<NamespaceLike> | undefined;

  constructor(deps: { policies: Lister<unknown>; namespaces?: Lister<NamespaceLike> }) {
    this.policies = deps.policies;
    this.namespaces = deps.namespaces;
  }

  validPolicies(): EmuvPolicy[] {
    const out: EmuvPolicy[] = [];
    for (const raw of this.policies.list()) {
      if (typeof raw !== 'object' || raw === null) continue;
      let p = this.parsed.get(raw);
      if (p === undefined) {
        const r = parseEmuvPolicy(raw);
        p = r.ok ? r.value : null;
        this.parsed.set(raw, p);
      }
      if (p) out.push(p);
    }
    return out;
  }

  forNamespace(namespace: string): AdmissionPolicy {
    return admissionPolicyFor(this.validPolicies(), namespace, this.namespaces?.get(namespace)?.metadata?.labels);
  }
}

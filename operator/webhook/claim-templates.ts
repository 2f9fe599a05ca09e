/**
 * The ResourceClaimTemplates the webhook's DRA conversion refers to (mutate-pod.ts). A pod's claim is made
 * from its template by the resourceclaim controller after the pod exists, and the pod stays Pending while
 * the template is missing, so the webhook makes sure it exists before it admits the pod: one template per
 * namespace and size, named claimTemplateName(bytes), created when absent (409 AlreadyExists is success).
 *
 * A cache of templates known to exist keeps the admission path free of API calls for sizes seen recently;
 * entries expire (ttlMs) so a template deleted by hand is made again within that time. Concurrent admissions
 * of the same size share one create. The create has a deadline below the webhook's timeoutSeconds, so a slow
 * apiserver gives a clear denial rather than a webhook timeout.
 */
import {
  CAPACITY_MEMORY,
  CLAIM_REQUEST,
  DEVICE_CLASS,
  LABEL_MANAGED_BY,
  MANAGED_BY,
  claimTemplateName,
} from '../../common/contracts/dra.ts';
import { isConflict, statusCode } from '../../common/kube/errors.ts';
import type { Clock } from '../clock.ts';
import type { ClaimTemplateApi, ResourceClaimTemplate } from '../kube/api.ts';

/** The template of `bytes` of virtual GPU memory in `namespace`: one device of emuv's class with that much `memory`. */
export function claimTemplateFor(namespace: string, bytes: bigint): ResourceClaimTemplate {
  return {
    metadata: { name: claimTemplateName(bytes), namespace, labels: { [LABEL_MANAGED_BY]: MANAGED_BY } },
    spec: {
      spec: {
        devices: {
          requests: [
            {
              name: CLAIM_REQUEST,
              exactly: {
                deviceClassName: DEVICE_CLASS,
                allocationMode: 'ExactCount',
                count: 1,
                capacity: { requests: { [CAPACITY_MEMORY]: bytes.toString() } },
              },
            },
          ],
        },
      },
    },
  };
}

/** Ensuring a template failed; `message` is meant for the person whose pod was refused. */
export class ClaimTemplateError extends Error {}

export interface ClaimTemplateEnsurer {
  /** Resolves once the template of `bytes` exists in `namespace`; rejects with a ClaimTemplateError. */
  ensure(namespace: string, bytes: bigint): Promise<void>;
}

/** The apiserver's own words from an error: the Status message in client-node's ApiException body, else the error's. */
function apiMessage(err: unknown): string {
  const body = (err as { body?: unknown } | null)?.body;
  let status: unknown = body;
  if (typeof body === 'string') {
    try {
      status = JSON.parse(body);
    } catch {
      status = undefined;
    }
  }
  const m = (status as { message?: unknown } | undefined)?.message;
  const text = typeof m === 'string' && m !== '' ? m : err instanceof Error ? err.message : String(err);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

export class ClaimTemplates implements ClaimTemplateEnsurer {
  /** `namespace/name` -> when the knowledge that it exists expires (insertion order: oldest first). */
  private readonly known = new Map<string, number>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly api: ClaimTemplateApi;
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly timeoutMs: number;

  constructor(deps: { api: ClaimTemplateApi; clock: Clock; ttlMs?: number; maxEntries?: number; timeoutMs?: number }) {
    this.api = deps.api;
    this.clock = deps.clock;
    this.ttlMs = deps.ttlMs ?? 10 * 60_000;
    this.maxEntries = deps.maxEntries ?? 4096;
    // The webhook's timeoutSeconds is 5: answer with a reason well before the apiserver gives up on us.
    this.timeoutMs = deps.timeoutMs ?? 3_000;
  }

  ensure(namespace: string, bytes: bigint): Promise<void> {
    const name = claimTemplateName(bytes);
    const key = `${namespace}/${name}`;
    const until = this.known.get(key);
    if (until !== undefined) {
      if (until > this.clock.now()) return Promise.resolve();
      this.known.delete(key);
    }
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.create(claimTemplateFor(namespace, bytes)).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private async create(template: ResourceClaimTemplate): Promise<void> {
    const { name, namespace } = template.metadata;
    const what = `ResourceClaimTemplate ${namespace}/${name}`;
    try {
      await this.withDeadline(this.api.createResourceClaimTemplate(template), what);
    } catch (err) {
      if (err instanceof ClaimTemplateError) throw err;
      if (!isConflict(err)) throw new ClaimTemplateError(describeFailure(what, err), { cause: err });
      // 409: it exists (made by an earlier admission, another replica, or a person).
    }
    this.remember(`${namespace}/${name}`);
  }

  private remember(key: string): void {
    this.known.delete(key);
    this.known.set(key, this.clock.now() + this.ttlMs);
    while (this.known.size > this.maxEntries) this.known.delete(this.known.keys().next().value!);
  }

  private withDeadline(call: Promise<void>, what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = this.clock.setTimeout(
        () =>
          reject(
            new ClaimTemplateError(
              `could not create ${what} within ${this.timeoutMs} ms (the apiserver did not answer in time); retry the pod`,
            ),
          ),
        this.timeoutMs,
      );
      call.then(
        () => {
          this.clock.clearTimeout(timer);
          resolve();
        },
        (err: unknown) => {
          this.clock.clearTimeout(timer);
          reject(err);
        },
      );
    });
  }
}

function describeFailure(what: string, err: unknown): string {
  const code = statusCode(err);
  const cause = `${code !== undefined ? `HTTP ${code}: ` : ''}${apiMessage(err)}`;
  let hint: string;
  if (code === 401 || code === 403)
    hint =
      'the emuv operator may not create resourceclaimtemplates.resource.k8s.io in this namespace; ' +
      'grant its service account create on resourceclaimtemplates (the chart does when DRA is enabled)';
  else if (code === 404)
    hint =
      'resource.k8s.io/v1 is not served here: DRA needs Kubernetes 1.34 or later; ' +
      'or set the EmuvPolicy back to allocation DevicePlugin';
  else if (code === 422 || code === 400) hint = 'the apiserver refused the template; this is a bug in emuv, please report it';
  else hint = 'retry the pod; if it keeps failing, check the operator logs and the apiserver';
  return `could not create ${what}, which the pod's emuv.io/vram-virtual claim is made from (${cause}): ${hint}`;
}

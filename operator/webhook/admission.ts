/**
 * AdmissionReview v1 in and out. Parsing never throws: garbage gets an HTTP 400 with the reason (the
 * apiserver then applies failurePolicy), a well-formed review always gets a response with its uid.
 *
 * `handleMutatePods` is the pure decision; `admitPods`, what the webhook server runs, adds the one side
 * effect: on DRA it makes sure the ResourceClaimTemplates the patch refers to exist (claim-templates.ts),
 * except on dry-run requests (the webhook is declared sideEffects NoneOnDryRun).
 */
import type { ClaimTemplateEnsurer } from './claim-templates.ts';
import { ClaimTemplateError } from './claim-templates.ts';
import type { AdmissionPolicy, MutationResult } from './mutate-pod.ts';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  operation: string;
  namespace: string;
  name?: string;
  dryRun: boolean;
  object: unknown;
}

export type ParsedReview = { ok: true; request: AdmissionRequest } | { ok: false; message: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseAdmissionReview(body: string | Buffer): ParsedReview {
  let doc: unknown;
  try {
    doc = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch {
    return { ok: false, message: 'body is not JSON' };
  }
  if (!isObject(doc)) return { ok: false, message: 'body is not a JSON object' };
  if (doc.apiVersion !== ADMISSION_API_VERSION || doc.kind !== 'AdmissionReview') {
    return { ok: false, message: `expected ${ADMISSION_API_VERSION} AdmissionReview, got ${String(doc.apiVersion)} ${String(doc.kind)}` };
  }
  const r = doc.request;
  if (!isObject(r)) return { ok: false, message: 'AdmissionReview has no request' };
  if (typeof r.uid !== 'string' || r.uid === '') return { ok: false, message: 'request.uid is missing' };
  const k = r.kind;
  if (!isObject(k) || typeof k.kind !== 'string') return { ok: false, message: 'request.kind is missing' };
  if (typeof r.operation !== 'string') return { ok: false, message: 'request.operation is missing' };
  const req: AdmissionRequest = {
    uid: r.uid,
    kind: { group: typeof k.group === 'string' ? k.group : '', version: typeof k.version === 'string' ? k.version : '', kind: k.kind },
    operation: r.operation,
    namespace: typeof r.namespace === 'string' ? r.namespace : '',
    dryRun: r.dryRun === true,
    object: r.object,
  };
  if (typeof r.name === 'string') req.name = r.name;
  return { ok: true, request: req };
}

export interface AdmissionReviewResponse {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: {
    uid: string;
    allowed: boolean;
    status?: { code: number; message: string; reason?: string };
    patchType?: 'JSONPatch';
    patch?: string;
    warnings?: string[];
  };
}

export function reviewResponse(uid: string, result: MutationResult): AdmissionReviewResponse {
  const response: AdmissionReviewResponse['response'] = { uid, allowed: result.allowed };
  if (!result.allowed) {
    const reason = result.code === 403 ? 'Forbidden' : result.code === 500 ? 'InternalError' : 'BadRequest';
    response.status = { code: result.code, message: result.message, reason };
  } else {
    if (result.patch.length > 0) {
      response.patchType = 'JSONPatch';
      response.patch = Buffer.from(JSON.stringify(result.patch)).toString('base64');
    }
    if (result.warnings.length > 0) response.warnings = result.warnings;
  }
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
}

export interface PolicySource {
  /** The admission policy for a namespace (see mutate-pod.ts admissionPolicyFor). */
  forNamespace(namespace: string): AdmissionPolicy;
}

export type HandlerResult = { status: 200; body: AdmissionReviewResponse } | { status: 400; body: { error: string } };

type Decision = { bad: HandlerResult } | { request: AdmissionRequest; result: MutationResult };

function decide(body: string | Buffer, policies: PolicySource, mutate: (pod: unknown, p: AdmissionPolicy) => MutationResult): Decision {
  const parsed = parseAdmissionReview(body);
  if (!parsed.ok) return { bad: { status: 400, body: { error: parsed.message } } };
  const r = parsed.request;
  if (r.kind.kind !== 'Pod' || r.kind.group !== '' || r.operation !== 'CREATE') {
    return { request: r, result: { allowed: true, patch: [], warnings: [] } };
  }
  return { request: r, result: mutate(r.object, policies.forNamespace(r.namespace)) };
}

/** The whole /mutate-pods decision, minus HTTP and side effects. Only pod CREATEs are mutated; anything else is allowed. */
export function handleMutatePods(
  body: string | Buffer,
  policies: PolicySource,
  mutate: (pod: unknown, p: AdmissionPolicy) => MutationResult,
): HandlerResult {
  const d = decide(body, policies, mutate);
  if ('bad' in d) return d.bad;
  return { status: 200, body: reviewResponse(d.request.uid, d.result) };
}

/**
 * `handleMutatePods` plus the claim templates of a DRA conversion: each must exist in the pod's namespace
 * before the pod does, or its claim cannot be made and the pod stays Pending. When one cannot be made the
 * pod is denied with code 500 (InternalError): the pod is fine, the cluster side failed, and a retry (by a
 * person, or by the ReplicaSet or Job controller, which retry on their own) may well succeed; a 4xx would
 * tell the user to fix a pod that has nothing wrong with it. Dry-run requests create nothing.
 */
export async function admitPods(
  body: string | Buffer,
  deps: {
    policies: PolicySource;
    mutate: (pod: unknown, p: AdmissionPolicy) => MutationResult;
    templates: ClaimTemplateEnsurer;
  },
): Promise<HandlerResult> {
  const d = decide(body, deps.policies, deps.mutate);
  if ('bad' in d) return d.bad;
  const { request, result } = d;
  if (result.allowed && result.claimTemplates && !request.dryRun) {
    const namespace = request.namespace || podNamespace(request.object);
    let failure: string | undefined;
    if (!namespace) failure = 'the admission request names no namespace for the pod, so its claim templates cannot be made';
    else {
      try {
        await Promise.all(result.claimTemplates.map((bytes) => deps.templates.ensure(namespace, bytes)));
      } catch (err) {
        if (!(err instanceof ClaimTemplateError)) throw err;
        failure = err.message;
      }
    }
    if (failure) return { status: 200, body: reviewResponse(request.uid, { allowed: false, code: 500, message: failure }) };
  }
  return { status: 200, body: reviewResponse(request.uid, result) };
}

function podNamespace(pod: unknown): string {
  const ns = (pod as { metadata?: { namespace?: unknown } } | null)?.metadata?.namespace;
  return typeof ns === 'string' ? ns : '';
}

/**
 * AdmissionReview v1 in and out. Parsing never throws: garbage gets an HTTP 400 with the reason (the
 * apiserver then applies failurePolicy), a well-formed review always gets a response with its uid.
 */
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
    response.status = { code: result.code, message: result.message, reason: result.code === 403 ? 'Forbidden' : 'BadRequest' };
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

/** The whole /mutate-pods decision, minus HTTP. Only pod CREATEs are mutated; anything else is allowed. */
export function handleMutatePods(
  body: string | Buffer,
  policies: PolicySource,
  mutate: (pod: unknown, p: AdmissionPolicy) => MutationResult,
): HandlerResult {
  const parsed = parseAdmissionReview(body);
  if (!parsed.ok) return { status: 400, body: { error: parsed.message } };
  const r = parsed.request;
  if (r.kind.kind !== 'Pod' || r.kind.group !== '' || r.operation !== 'CREATE') {
    return { status: 200, body: reviewResponse(r.uid, { allowed: true, patch: [], warnings: [] }) };
  }
  return { status: 200, body: reviewResponse(r.uid, mutate(r.object, policies.forNamespace(r.namespace))) };
}

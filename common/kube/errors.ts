/**
 * Status codes of Kubernetes API errors, one way for the agent and the operator. @kubernetes/client-node
 * throws an ApiException whose `code` is the HTTP status; the test stand-ins throw errors with the same field.
 */

/** HTTP status of an API error, or undefined for anything else (network errors, bugs). */
export function statusCode(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null) {
    const code = (err as { code?: unknown; statusCode?: unknown }).code ?? (err as { statusCode?: unknown }).statusCode;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

export const isNotFound = (err: unknown): boolean => statusCode(err) === 404;
/** 409: a lost optimistic-concurrency race on update, or a create of a name that exists. */
export const isConflict = (err: unknown): boolean => statusCode(err) === 409;

/** The call's result, or `fallback` when the object does not exist (404); other errors propagate. */
export async function unlessNotFound<T, F>(call: Promise<T>, fallback: F): Promise<T | F> {
  try {
    return await call;
  } catch (err) {
    if (isNotFound(err)) return fallback;
    throw err;
  }
}

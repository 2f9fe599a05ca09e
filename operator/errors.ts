/**
 * Error policy of the operator (style P7): a reconcile that throws is retried with backoff unless the
 * error is a PermanentError, which only a change of the object can fix (recorded, not retried).
 */
export class PermanentError extends Error {
  override name = 'PermanentError';
}

/** HTTP status of an error from @kubernetes/client-node (ApiException.code) or our fake API. */
export function statusCode(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null) {
    const code = (err as { code?: unknown; statusCode?: unknown }).code ?? (err as { statusCode?: unknown }).statusCode;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

export const isNotFound = (err: unknown) => statusCode(err) === 404;
export const isConflict = (err: unknown) => statusCode(err) === 409;
export const isAlreadyExists = (err: unknown) => statusCode(err) === 409;

/** An error shaped like client-node's ApiException, for fakes. */
export class HttpError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

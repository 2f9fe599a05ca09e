/**
 * A few error classes whose type drives what the caller does (P7): an InvalidRequestError becomes
 * gRPC INVALID_ARGUMENT for the kubelet, a ConfigError stops the process at start with its message,
 * anything else is logged and retried.
 */
export class InvalidRequestError extends Error {
  override name = 'InvalidRequestError';
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** `failed to <what>: <cause>`, keeping the cause chain. */
export function wrapError(what: string, cause: unknown): Error {
  const msg = cause instanceof Error ? cause.message : String(cause);
  return new Error(`failed to ${what}: ${msg}`, { cause });
}

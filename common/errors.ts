/**
 * A few error classes whose type drives what the caller does: an InvalidRequestError becomes
 * gRPC INVALID_ARGUMENT for the kubelet, a ConfigError (a bad value) and a StartupError (a good value
 * whose target fails: a busy port, a missing directory) stop the process at start with their message,
 * anything else is logged and retried.
 */
export class InvalidRequestError extends Error {
  override name = 'InvalidRequestError';
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * A start-up step failed on what a flag names. The message starts with the flag and its value
 * (`--metrics-addr 0.0.0.0:9402: cannot listen: address already in use (EADDRINUSE)`), so the one line a person
 * sees says what to change.
 */
export class StartupError extends Error {
  override name = 'StartupError';
  readonly flag: string;
  constructor(flag: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.flag = flag;
  }
}

/** An errno error as words a person can act on: "address already in use (EADDRINUSE)". */
export function describeSystemError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const words = code ? ERRNO_WORDS[code] : undefined;
  if (words) return `${words} (${code})`;
  return err instanceof Error ? err.message : String(err);
}

const ERRNO_WORDS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'no such address on this host',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'not a directory',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  ENAMETOOLONG: 'path too long',
};

/**
 * An error as the one line a person reads on stderr: its message and its causes, without JSON or a stack.
 * A cause whose text the message already holds is not repeated.
 */
export function errorLine(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  while (e !== undefined && e !== null && parts.length < 4) {
    const msg = e instanceof Error ? e.message : String(e);
    if (!parts.some((p) => p.includes(msg))) parts.push(msg);
    // These two are written for a person and already say, in words, what their cause said.
    if (e instanceof StartupError || e instanceof ConfigError) break;
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(': ').replace(/\s*\n\s*/g, ' ');
}

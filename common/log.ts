/**
 * Structured logging: one constant message plus key/value fields, JSON lines on stdout (pino).
 * Components receive a Logger; only main.ts creates the root one. `nopLogger` is for tests and
 * for collaborators whose caller does not care.
 */
import { pino } from 'pino';

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(bindings: LogFields): Logger;
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

function wrap(p: pino.Logger): Logger {
  return {
    debug: (msg, f) => p.debug(f ?? {}, msg),
    info: (msg, f) => p.info(f ?? {}, msg),
    warn: (msg, f) => p.warn(f ?? {}, msg),
    error: (msg, f) => p.error(f ?? {}, msg),
    child: (b) => wrap(p.child(b)),
  };
}

/** JSON logger to the given stream (stdout by default), with `component` bound. */
export function createLogger(opts: { level: LogLevel; component: string; destination?: NodeJS.WritableStream }): Logger {
  const p = pino(
    { level: opts.level, base: { component: opts.component }, timestamp: pino.stdTimeFunctions.isoTime },
    opts.destination ?? process.stdout,
  );
  return wrap(p);
}

/** A logger that drops everything. */
export const nopLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => nopLogger,
};

/** A logger that records entries, for tests that assert on what was logged. */
export function memoryLogger(): Logger & { entries: { level: LogLevel; msg: string; fields: LogFields }[] } {
  const entries: { level: LogLevel; msg: string; fields: LogFields }[] = [];
  const make = (bindings: LogFields): Logger => ({
    debug: (msg, f) => entries.push({ level: 'debug', msg, fields: { ...bindings, ...f } }),
    info: (msg, f) => entries.push({ level: 'info', msg, fields: { ...bindings, ...f } }),
    warn: (msg, f) => entries.push({ level: 'warn', msg, fields: { ...bindings, ...f } }),
    error: (msg, f) => entries.push({ level: 'error', msg, fields: { ...bindings, ...f } }),
    child: (b) => make({ ...bindings, ...b }),
  });
  return Object.assign(make({}), { entries });
}

/** Error to loggable fields (message and cause chain; no stack at info level). */
export function errFields(err: unknown): LogFields {
  if (!(err instanceof Error)) return { err: String(err) };
  const causes: string[] = [];
  let c: unknown = err.cause;
  while (c instanceof Error && causes.length < 5) {
    causes.push(c.message);
    c = c.cause;
  }
  return causes.length ? { err: err.message, causes } : { err: err.message };
}

/**
 * Flags of the emuv programs, once: a command declares a table (name -> type, default, help, environment
 * variable), `parseFlags` turns argv and the environment into typed values, `usage` and `markdownFlags`
 * render the same table as `--help` text and as the docs' tables (a test compares the docs with it).
 *
 * Rules, the same for `emuv` and `emuv-operator`:
 * - every flag `--some-flag` has the variable `<prefix>SOME_FLAG` (the program's prefix, e.g. `EMUV_AGENT_`),
 *   and may list fallbacks read after it (`KUBECONFIG`, the downward API's `NODE_NAME`);
 * - a flag wins over the environment, the environment over the default; an empty variable counts as unset
 *   (a chart renders optional values as "");
 * - `--name=value` and `--name value`; a flag given twice keeps the last (scripts append overrides);
 *   a repeatable flag keeps every occurrence, and its variable is a comma-separated list;
 * - booleans are `on` or `off` (`true` and `false` mean the same), and a boolean flag alone means on;
 * - strict: an unknown flag, a stray argument, a bad flag value or a bad variable value is a ConfigError that
 *   names the flag or the variable, the value, and what is accepted.
 * Pure: the caller passes argv and the environment in.
 */
import { ConfigError } from './errors.ts';
import { parseSize } from './contracts/interposer.ts';

/** How the text of one flag becomes its value. */
export interface FlagType<T> {
  /** The value as usage shows it: `<size>`, `on|off`, `fill|fixed`. */
  readonly metavar: string;
  /** Every occurrence is kept (flags), or every comma-separated entry (the variable). */
  readonly repeatable?: boolean;
  /** The text a flag given alone stands for (`--json` is `--json=on`); booleans only. */
  readonly bare?: string;
  /**
   * One text, or every entry of a repeatable flag. Throws an Error that says what is accepted and never
   * names the flag (the parser does, with where the value came from); an entry of a list is named with
   * EntryError.
   */
  parse(texts: readonly string[]): T;
}

export interface FlagSpec<T> {
  type: FlagType<T>;
  /** The default as a person would write it, parsed like any value ('' for none). */
  default: string;
  /** One line for `--help`. */
  help: string;
  /** The docs' wording when it says more than `help` (Markdown); the same entry, so the two cannot part. */
  doc?: string;
  /** How usage and the docs show the default when its text would not say it (e.g. '' -> "in-cluster"). */
  defaultText?: string;
  /** Variables read after the program's own, in order (KUBECONFIG; NODE_NAME from the downward API). */
  fallbackEnv?: readonly string[];
}

// The table's value types are erased to `any` here only: each table keeps its own types through
// `defineCommand`, and FlagValues gives every parsed value its type back.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnySpec = FlagSpec<any>;

export interface CommandFlags<F extends Record<string, AnySpec> = Record<string, AnySpec>> {
  /** `emuv plugin`, `emuv-operator`: what usage prints. */
  readonly command: string;
  /** The program's variable prefix, e.g. `EMUV_AGENT_`. */
  readonly envPrefix: string;
  readonly flags: F;
}

export type FlagValues<F extends Record<string, AnySpec>> = { [K in keyof F]: F[K] extends FlagSpec<infer T> ? T : never };

export interface ParsedFlags<F extends Record<string, AnySpec>> {
  values: FlagValues<F>;
  /** Where each value came from: `--flag`, the variable's name, or `default`; error messages name it. */
  from: { [K in keyof F]: string };
}

/** A table with its types kept (the identity, for inference). */
export function defineCommand<const F extends Record<string, AnySpec>>(c: CommandFlags<F>): CommandFlags<F> {
  return c;
}

/** `--device-plugin-dir` with prefix `EMUV_AGENT_` -> `EMUV_AGENT_DEVICE_PLUGIN_DIR`. */
export function envName(prefix: string, flag: string): string {
  return `${prefix}${flag.toUpperCase().replace(/-/g, '_')}`;
}

/** Every variable a command reads, in table order (its own, then fallbacks). */
export function envNames(c: CommandFlags): string[] {
  return Object.entries(c.flags).flatMap(([name, f]) => [envName(c.envPrefix, name), ...(f.fallbackEnv ?? [])]);
}

/** Thrown by a repeatable type for one bad entry: the parser names that entry rather than the whole list. */
export class EntryError extends Error {
  override name = 'EntryError';
  readonly entry: string;
  constructor(entry: string, reason: string) {
    super(reason);
    this.entry = entry;
  }
}

/** A value as it is shown back: as typed when plain, quoted (and so escaped) when empty or odd. */
function show(text: string): string {
  return /^[\x21-\x7e]+$/.test(text) ? text : JSON.stringify(text);
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * argv and the environment -> typed values, by the table. Throws ConfigError naming the flag or the
 * variable, the value and what is accepted.
 */
export function parseFlags<F extends Record<string, AnySpec>>(
  c: CommandFlags<F>,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ParsedFlags<F> {
  const given = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--([a-z0-9][a-z0-9-]*)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new ConfigError(`unexpected argument ${show(arg)}: ${c.command} takes only flags (--name=value); run with --help`);
    const name = m[1]!;
    const spec = Object.hasOwn(c.flags, name) ? c.flags[name] : undefined;
    if (!spec) throw new ConfigError(`--${name}: unknown flag of ${c.command}; run with --help for its flags`);
    let value = m[2];
    if (value === undefined) {
      // No command takes arguments other than flags, so an argument after a flag that is not a flag is
      // that flag's value (`--workers 4`, `--json off`); a boolean followed by a flag stands alone (on).
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) value = argv[++i]!;
      else if (spec.type.bare !== undefined) value = spec.type.bare;
      else throw new ConfigError(`--${name}: needs a value (${spec.type.metavar})`);
    }
    const texts = given.get(name) ?? [];
    given.set(name, spec.type.repeatable ? [...texts, value] : [value]);
  }

  const values: Record<string, unknown> = {};
  const from: Record<string, string> = {};
  for (const [name, spec] of Object.entries(c.flags)) {
    const flag = `--${name}`;
    const fromFlag = given.get(name);
    let texts: readonly string[];
    let label: (entry?: string) => string;
    if (fromFlag) {
      texts = fromFlag;
      from[name] = flag;
      label = (entry) => (entry === undefined ? flag : `${flag} ${show(entry)}`);
    } else {
      const variable = [envName(c.envPrefix, name), ...(spec.fallbackEnv ?? [])].find((v) => (env[v] ?? '') !== '');
      if (variable !== undefined) {
        const text = env[variable]!;
        texts = spec.type.repeatable ? splitList(text) : [text];
        from[name] = variable;
        label = (entry) =>
          entry === undefined ? variable : spec.type.repeatable ? `${variable} entry ${show(entry)}` : `${variable}=${show(entry)}`;
      } else {
        texts = spec.type.repeatable ? splitList(spec.default) : [spec.default];
        from[name] = 'default';
        // A default that does not parse is this table's bug, not the user's: say so.
        label = (entry) => `the default of ${flag}${entry === undefined ? '' : ` (${show(entry)})`}`;
      }
    }
    try {
      values[name] = spec.type.parse(texts);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      const entry = err instanceof EntryError ? err.entry : spec.type.repeatable ? undefined : texts[0];
      throw new ConfigError(`${label(entry)}: ${reasonOf(err)}`, { cause: err });
    }
  }
  return { values: values as FlagValues<F>, from: from as ParsedFlags<F>['from'] };
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

// ---- usage and docs, from the same table ----

function defaultShown(f: AnySpec): string | null {
  if (f.defaultText !== undefined) return f.defaultText;
  return f.default === '' ? null : f.default;
}

function variablesOf(c: CommandFlags, name: string): string[] {
  return [envName(c.envPrefix, name), ...(c.flags[name]!.fallbackEnv ?? [])];
}

/** The `--help` text: one line per flag with its value, help, default and variables. */
export function usage(c: CommandFlags): string {
  const heads = Object.entries(c.flags).map(([name, f]) => `--${name} ${f.type.metavar}`);
  const width = Math.max(...heads.map((h) => h.length));
  const lines = Object.entries(c.flags).map(([name, f], i) => {
    const def = defaultShown(f);
    const repeat = f.type.repeatable ? ' (repeatable)' : '';
    return `  ${heads[i]!.padEnd(width)}  ${f.help}${repeat}${def === null ? '' : ` (default ${def})`}  [${variablesOf(c, name).join(', then ')}]`;
  });
  return [
    `usage: ${c.command} [flags]`,
    `A flag wins over its variable; booleans are on or off (true, false); sizes are bytes or an integer with Ki, Mi, Gi or Ti.`,
    ...lines,
  ].join('\n');
}

/** The docs' table of a command (docs/agent.md, docs/operator.md hold it verbatim; a test checks). */
export function markdownFlags(c: CommandFlags): string {
  const code = (s: string) => `\`${s}\``;
  const rows = Object.entries(c.flags).map(([name, f]) => {
    const def = defaultShown(f);
    const vars = variablesOf(c, name).map(code).join(', then ');
    const text = (f.doc ?? f.help) + (f.type.repeatable ? ' (repeatable; the variable takes a comma-separated list)' : '');
    return `| ${code(`--${name}`)} | ${vars} | ${def === null ? 'none' : f.defaultText !== undefined ? def : code(def)} | ${text} |`;
  });
  return ['| flag | variable | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

// ---- value types ----

/** A type from a parser of one text. */
export function valueType<T>(metavar: string, parse: (text: string) => T, opts: { bare?: string } = {}): FlagType<T> {
  return { metavar, ...opts, parse: (texts) => parse(texts[texts.length - 1] ?? '') };
}

/** Any text, '' included. */
export const text: FlagType<string> = valueType('<text>', (t) => t);

/** Any text; '' (the default of optional settings) is null. */
export function optionalText(metavar = '<text>'): FlagType<string | null> {
  return valueType(metavar, (t) => (t === '' ? null : t));
}

/** A path; '' is refused (a variable set to '' counts as unset, so only a flag can say it). */
export function path(metavar = '<path>'): FlagType<string> {
  return valueType(metavar, (t) => {
    if (t === '') throw new Error('expected a path');
    return t;
  });
}

const BOOLEAN_WORDS = new Map([
  ['on', true],
  ['true', true],
  ['off', false],
  ['false', false],
]);

/** on or off; true and false mean the same, so both programs and every variable read alike. */
export const onOff: FlagType<boolean> = valueType(
  'on|off',
  (t) => {
    const v = BOOLEAN_WORDS.get(t);
    if (v === undefined) throw new Error('expected on or off (or true, false)');
    return v;
  },
  { bare: 'on' },
);

/** A whole number from min to max. */
export function int(min: number, max: number): FlagType<number> {
  return valueType(`${min}-${max}`, (t) => {
    if (!/^(0|[1-9][0-9]*)$/.test(t) || Number(t) < min || Number(t) > max) throw new Error(`expected an integer from ${min} to ${max}`);
    return Number(t);
  });
}

/** One of the listed words, as written. */
export function oneOf<const V extends string>(values: readonly V[]): FlagType<V> {
  return valueType(values.join('|'), (t) => {
    if (!(values as readonly string[]).includes(t)) throw new Error(`expected ${values.slice(0, -1).join(', ')} or ${values.at(-1)}`);
    return t as V;
  });
}

/** The sentence of what a size is, for messages. */
export const SIZE_EXPECTED = 'expected bytes or an integer with Ki, Mi, Gi or Ti (e.g. 512Mi)';

/**
 * A contract size (common/contracts/interposer.ts parseSize) in bytes, as a JS number: at most 2^53-1 by
 * default, where the agent's arithmetic stays exact.
 */
export function parseSizeBytes(t: string, opts: { max?: number; min?: number } = {}): number {
  const max = opts.max ?? Number.MAX_SAFE_INTEGER;
  let v: bigint;
  try {
    v = parseSize(t);
  } catch {
    throw new Error(SIZE_EXPECTED);
  }
  if (v > BigInt(max)) throw new Error(`larger than ${max} bytes${max === Number.MAX_SAFE_INTEGER ? ' (2^53-1)' : ''}`);
  if (opts.min !== undefined && v < BigInt(opts.min)) throw new Error(`must be at least ${opts.min} bytes`);
  return Number(v);
}

export function size(opts: { max?: number; min?: number } = {}): FlagType<number> {
  return valueType('<size>', (t) => parseSizeBytes(t, opts));
}

const DURATION_UNITS = { s: 1000, m: 60_000, h: 3_600_000 } as const;

/** A duration like 90s, 30m or 1h, in milliseconds. */
export const duration: FlagType<number> = valueType('<duration>', (t) => {
  const m = /^([1-9][0-9]{0,5})(s|m|h)$/.exec(t);
  if (!m) throw new Error('expected a duration like 90s, 30m or 1h');
  return Number(m[1]) * DURATION_UNITS[m[2] as keyof typeof DURATION_UNITS];
});

/**
 * A repeatable flag of `item`s; `combine` checks the whole (duplicates) and shapes the result. A bad entry
 * is named by itself.
 */
export function list<T, R = T[]>(item: FlagType<T>, combine?: (items: T[]) => R): FlagType<R> {
  return {
    metavar: item.metavar,
    repeatable: true,
    parse: (texts) => {
      const items = texts.map((t) => {
        try {
          return item.parse([t]);
        } catch (err) {
          throw new EntryError(t, reasonOf(err));
        }
      });
      return combine ? combine(items) : (items as R);
    },
  };
}

/** `off`, or a value of `inner`: for settings whose absence is a choice (`--metrics-addr off`). */
export function offOr<T>(inner: FlagType<T>): FlagType<T | null> {
  return valueType(`${inner.metavar}|off`, (t) => (t === 'off' ? null : inner.parse([t])));
}

// ---- settings every program has ----

/**
 * `--kubeconfig`, the same in every program: the flag, then the program's variable, then `KUBECONFIG` (as
 * kubectl reads it; one file), else the pod's in-cluster configuration.
 */
export const kubeconfigFlag = {
  type: optionalText('<path>'),
  default: '',
  defaultText: 'in-cluster',
  fallbackEnv: ['KUBECONFIG'],
  help: 'kubeconfig file for the Kubernetes API (one file)',
} satisfies FlagSpec<string | null>;

/** A kubeconfig file and the setting that named it, which a failure to load it names in turn. */
export interface KubeconfigRef {
  path: string;
  /** `--kubeconfig`, the program's variable, or `KUBECONFIG`. */
  from: string;
}

export function kubeconfigRef(path: string | null, from: string): KubeconfigRef | null {
  return path === null ? null : { path, from };
}

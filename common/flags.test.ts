import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.ts';
import {
  defineCommand,
  duration,
  envName,
  envNames,
  int,
  kubeconfigFlag,
  list,
  markdownFlags,
  offOr,
  oneOf,
  onOff,
  optionalText,
  parseFlags,
  path,
  size,
  usage,
  valueType,
} from './flags.ts';

const T = defineCommand({
  command: 'demo',
  envPrefix: 'DEMO_',
  flags: {
    root: { type: path(), default: '/sys', help: 'a path' },
    count: { type: int(1, 8), default: '4', help: 'a count' },
    mode: { type: oneOf(['fill', 'fixed']), default: 'fill', help: 'a mode' },
    reserve: { type: size(), default: '512Mi', help: 'a size' },
    every: { type: duration, default: '1h', help: 'a duration' },
    verbose: { type: onOff, default: 'off', help: 'a boolean' },
    name: { type: optionalText('<name>'), default: '', fallbackEnv: ['NODE_NAME'], help: 'a name' },
    addr: { type: offOr(valueType('<port>', (t) => Number(t))), default: '9402', help: 'a port or off' },
    item: {
      type: list(int(0, 9), (xs) => {
        if (new Set(xs).size !== xs.length) throw new Error('an item given twice');
        return xs;
      }),
      default: '',
      help: 'items',
    },
    kubeconfig: kubeconfigFlag,
  },
});

const parse = (argv: string[], env: Record<string, string> = {}) => parseFlags(T, argv, env);
const refusal = (argv: string[], env: Record<string, string> = {}) => {
  try {
    parse(argv, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('not refused');
};

describe('parseFlags', () => {
  it('defaults, parsed like any value', () => {
    const { values, from } = parse([]);
    expect(values).toEqual({
      root: '/sys',
      count: 4,
      mode: 'fill',
      reserve: 512 * 1024 ** 2,
      every: 3_600_000,
      verbose: false,
      name: null,
      addr: 9402,
      item: [],
      kubeconfig: null,
    });
    expect(from.count).toBe('default');
  });

  it('a flag wins over its variable, the variable over a fallback, a fallback over the default', () => {
    const env = { DEMO_COUNT: '2', DEMO_NAME: 'own', NODE_NAME: 'downward', KUBECONFIG: '/k' };
    const { values, from } = parse(['--count=3'], env);
    expect([values.count, from.count]).toEqual([3, '--count']);
    expect([values.name, from.name]).toEqual(['own', 'DEMO_NAME']);
    expect([values.kubeconfig, from.kubeconfig]).toEqual(['/k', 'KUBECONFIG']);
    expect(parse([], { NODE_NAME: 'downward' }).values.name).toBe('downward');
    expect(parse([], { DEMO_COUNT: '2' }).values.count).toBe(2);
  });

  it('an empty variable is unset, so a fallback or the default applies', () => {
    expect(parse([], { DEMO_NAME: '', NODE_NAME: 'downward', DEMO_COUNT: '' }).values).toMatchObject({ name: 'downward', count: 4 });
  });

  it('--name=value, --name value, the last of a repeated flag, every occurrence of a repeatable one', () => {
    expect(parse(['--count', '2', '--mode=fixed', '--count=5']).values).toMatchObject({ count: 5, mode: 'fixed' });
    expect(parse(['--item=1', '--item', '2']).values.item).toEqual([1, 2]);
    expect(parse([], { DEMO_ITEM: '3, 4,' }).values.item).toEqual([3, 4]);
    expect(parse(['--addr=off']).values.addr).toBeNull();
  });

  it('booleans: on/off and true/false alike; alone, on; followed by a flag, alone', () => {
    for (const [text, v] of [
      ['on', true],
      ['true', true],
      ['off', false],
      ['false', false],
    ] as const) {
      expect(parse([`--verbose=${text}`]).values.verbose).toBe(v);
      expect(parse(['--verbose', text]).values.verbose).toBe(v);
      expect(parse([], { DEMO_VERBOSE: text }).values.verbose).toBe(v);
    }
    expect(parse(['--verbose', '--count=2']).values).toMatchObject({ verbose: true, count: 2 });
    expect(parse(['--verbose'], { DEMO_VERBOSE: 'off' }).values.verbose).toBe(true);
  });

  it.each([
    [['--frobnicate'], '--frobnicate: unknown flag of demo; run with --help for its flags'],
    [['count=3'], 'unexpected argument count=3: demo takes only flags (--name=value); run with --help'],
    [['-c', '3'], 'unexpected argument -c'],
    [['--count'], '--count: needs a value (1-8)'],
    [['--count=9'], '--count 9: expected an integer from 1 to 8'],
    [['--count=04'], '--count 04: expected an integer from 1 to 8'],
    [['--mode=burst'], '--mode burst: expected fill or fixed'],
    [['--reserve=1.5Gi'], '--reserve 1.5Gi: expected bytes or an integer with Ki, Mi, Gi or Ti (e.g. 512Mi)'],
    [['--reserve=8192Ti'], '--reserve 8192Ti: larger than 9007199254740991 bytes (2^53-1)'],
    [['--every=1d'], '--every 1d: expected a duration like 90s, 30m or 1h'],
    [['--verbose=yes'], '--verbose yes: expected on or off (or true, false)'],
    [['--root='], '--root "": expected a path'],
    [['--item=1', '--item=x'], '--item x: expected an integer from 0 to 9'],
    [['--item=1', '--item=1'], '--item: an item given twice'],
  ])('%j is refused: %s', (argv, message) => {
    expect(refusal(argv)).toContain(message);
  });

  it.each([
    [{ DEMO_COUNT: '9' }, 'DEMO_COUNT=9: expected an integer from 1 to 8'],
    [{ DEMO_VERBOSE: 'yes' }, 'DEMO_VERBOSE=yes: expected on or off (or true, false)'],
    [{ DEMO_ITEM: '1,x' }, 'DEMO_ITEM entry x: expected an integer from 0 to 9'],
    [{ DEMO_ITEM: '1,1' }, 'DEMO_ITEM: an item given twice'],
    // A hostile value cannot forge a log line or send terminal escapes: it is shown quoted and escaped.
    [{ DEMO_MODE: 'fill\n\x1b[2J' }, 'DEMO_MODE="fill\\n\\u001b[2J": expected fill or fixed'],
  ])('a bad variable %j is refused: %s', (env, message) => {
    expect(refusal([], env)).toBe(message);
  });

  it('a default its own type refuses is reported as the table’s fault', () => {
    const bad = defineCommand({ command: 'x', envPrefix: 'X_', flags: { n: { type: int(1, 2), default: '3', help: '' } } });
    expect(() => parseFlags(bad, [], {})).toThrow('the default of --n (3): expected an integer from 1 to 2');
  });
});

describe('usage and docs from the same table', () => {
  it('variable names', () => {
    expect(envName('EMUV_AGENT_', 'device-plugin-dir')).toBe('EMUV_AGENT_DEVICE_PLUGIN_DIR');
    expect(envNames(T)).toContain('NODE_NAME');
    expect(envNames(T)).toContain('KUBECONFIG');
    expect(envNames(T).filter((v) => v.startsWith('DEMO_'))).toHaveLength(Object.keys(T.flags).length);
  });

  it('usage: every flag with its value, help, default and variables', () => {
    const text = usage(T);
    expect(text).toMatch(/^usage: demo \[flags\]/);
    expect(text).toMatch(/--count 1-8 +a count \(default 4\) {2}\[DEMO_COUNT\]/);
    expect(text).toContain('[DEMO_NAME, then NODE_NAME]');
    expect(text).toContain('--kubeconfig <path>');
    expect(text).toContain('(default in-cluster)  [DEMO_KUBECONFIG, then KUBECONFIG]');
    expect(text).toContain('items (repeatable)');
  });

  it('markdown: one row per flag', () => {
    const md = markdownFlags(T).split('\n');
    expect(md[0]).toBe('| flag | variable | default | meaning |');
    expect(md).toContain('| `--count` | `DEMO_COUNT` | `4` | a count |');
    expect(md).toContain('| `--name` | `DEMO_NAME`, then `NODE_NAME` | none | a name |');
    expect(md).toContain(
      '| `--kubeconfig` | `DEMO_KUBECONFIG`, then `KUBECONFIG` | in-cluster | kubeconfig file for the Kubernetes API (one file) |',
    );
    expect(md).toHaveLength(2 + Object.keys(T.flags).length);
  });
});

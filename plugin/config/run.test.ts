import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/errors.ts';
import { markdownFlags } from '../../common/flags.ts';
import { defaultRunStateDir, parseRunConfig, RUN_COMMAND } from './run.ts';

const GiB = 1024 ** 3;

describe('emuv run flags', () => {
  it('takes the flags before -- and the command after it, untouched', () => {
    const cfg = parseRunConfig(['--limit', '28Gi', '--vram-share=7Gi', '--', 'python', 'infer.py', '--help', '--', '-h'], {});
    expect(cfg).toEqual({
      limitBytes: 28 * GiB,
      vramShareBytes: 7 * GiB,
      vramReserveBytes: 512 * 1024 ** 2,
      spillBackend: 'auto',
      gpu: null,
      stateDir: null,
      driverLib: null,
      interposerSource: null,
      command: ['python', 'infer.py', '--help', '--', '-h'],
    });
  });

  it('reads EMUV_AGENT_* like the other commands; a flag wins', () => {
    const env = { EMUV_AGENT_LIMIT: '16Gi', EMUV_AGENT_SPILL_BACKEND: 'managed', EMUV_AGENT_STATE_DIR: '/x', EMUV_AGENT_DRIVER_LIB: '/d' };
    const cfg = parseRunConfig(['--spill-backend', 'pinned', '--', 'true'], env);
    expect(cfg).toMatchObject({ limitBytes: 16 * GiB, spillBackend: 'pinned', stateDir: '/x', driverLib: '/d' });
  });

  it.each([
    [['--limit', '28Gi'], /^no command: give it after --, e\.g\. emuv run --limit 28Gi -- python infer\.py$/],
    [['--limit', '28Gi', '--'], /^no command after --/],
    [['--', 'python'], /^--limit <size> is required/],
    [['--limit', '28G', '--', 'python'], /^--limit 28G: expected bytes or an integer with Ki, Mi, Gi or Ti/],
    [['--limit', '0', '--', 'python'], /^--limit 0: must be above 0$/],
    [['--limit', '28Gi', '--vram-share', '7.5Gi', '--', 'python'], /^--vram-share 7\.5Gi: expected bytes/],
    [['--limit', '28Gi', '--spill-backend', 'disk', '--', 'python'], /^--spill-backend disk: expected auto, pinned or managed$/],
    [['--limit', '28Gi', 'python', '--', 'x'], /^unexpected argument python: emuv run takes only flags/],
  ])('refuses %j with a clear message', (argv, message) => {
    expect(() => parseRunConfig(argv, {})).toThrow(ConfigError);
    expect(() => parseRunConfig(argv, {})).toThrow(message);
  });

  it('keeps its stats under $XDG_RUNTIME_DIR/emuv, else /tmp/emuv-<uid>', () => {
    expect(defaultRunStateDir({ XDG_RUNTIME_DIR: '/run/user/1000' }, 1000)).toBe('/run/user/1000/emuv');
    expect(defaultRunStateDir({ XDG_RUNTIME_DIR: '/run/user/1000/' }, 1000)).toBe('/run/user/1000/emuv');
    expect(defaultRunStateDir({}, 1000)).toBe('/tmp/emuv-1000');
    expect(defaultRunStateDir({ XDG_RUNTIME_DIR: 'relative' }, 7)).toBe('/tmp/emuv-7');
  });
});

describe('docs/run.md', () => {
  it('holds the flag table generated from emuv run’s flags', () => {
    const doc = readFileSync(new URL('../../docs/run.md', import.meta.url), 'utf8');
    expect(doc).toContain(markdownFlags(RUN_COMMAND));
  });
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { markdownFlags } from '../../common/flags.ts';
import { parseViewerConfig, VIEWER_COMMAND } from './viewer.ts';

describe('emuv top and status configuration', () => {
  it('defaults: ask the local agent, sorted by spill', () => {
    expect(parseViewerConfig([], {})).toEqual({
      url: 'http://127.0.0.1:9402',
      agentsNamespace: null,
      kubeconfig: null,
      stateDir: null,
      podResourcesSocket: null,
      procRoot: '/proc',
      once: false,
      sort: 'spill',
      color: 'auto',
    });
  });

  it('flags and EMUV_AGENT_* variables: in an agent pod, its state directory and roots', () => {
    const env = { EMUV_AGENT_STATE_DIR: '/run/emuv', EMUV_AGENT_PROC_ROOT: '/host/proc' };
    expect(parseViewerConfig(['--once', '--sort', 'vram'], env)).toMatchObject({
      stateDir: '/run/emuv',
      procRoot: '/host/proc',
      once: true,
      sort: 'vram',
    });
  });

  it('--agents-namespace: every node through the Kubernetes API, the kubeconfig from the flag or KUBECONFIG', () => {
    expect(parseViewerConfig(['--agents-namespace', 'emuv-system'], { KUBECONFIG: '/k/config' })).toMatchObject({
      agentsNamespace: 'emuv-system',
      kubeconfig: { path: '/k/config', from: 'KUBECONFIG' },
    });
    expect(parseViewerConfig(['--agents-namespace=emuv-system', '--kubeconfig=/a'], {}).kubeconfig).toEqual({
      path: '/a',
      from: '--kubeconfig',
    });
    expect(() => parseViewerConfig(['--agents-namespace=emuv-system', '--state-dir=/run/emuv'], {})).toThrow(
      /--agents-namespace and --state-dir name two different sources/,
    );
  });

  it('--color and EMUV_AGENT_COLOR', () => {
    expect(parseViewerConfig(['--color=never'], {}).color).toBe('never');
    expect(parseViewerConfig([], { EMUV_AGENT_COLOR: 'always' }).color).toBe('always');
  });

  it.each([
    [['--sort=size'], '--sort size: expected spill, vram, limit, name or events'],
    [['--url=localhost:9402'], '--url localhost:9402: expected http://host:port'],
    [['--once=yes'], '--once yes: expected on or off'],
    [['--color=yes'], '--color yes: expected auto, always or never'],
  ])('%j is refused', (argv, message) => {
    expect(() => parseViewerConfig(argv, {})).toThrow(message);
  });
});

describe('docs/top.md', () => {
  it('holds the flag table generated from emuv top’s flags', () => {
    const doc = readFileSync(new URL('../../docs/top.md', import.meta.url), 'utf8');
    expect(doc).toContain(markdownFlags(VIEWER_COMMAND));
  });
});

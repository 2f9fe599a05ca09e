import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../common/errors.ts';
import { markdownFlags } from '../common/flags.ts';
import { OPERATOR_COMMAND, parseOperatorConfig, usage } from './config.ts';

describe('parseOperatorConfig', () => {
  it('defaults', () => {
    expect(parseOperatorConfig([], {}, 'host-1')).toEqual({
      namespace: 'emuv-system',
      identity: 'host-1',
      kubeconfig: null,
      controller: true,
      webhook: true,
      leaderElect: true,
      leaseName: 'emuv-operator',
      workers: 8,
      webhookPort: 9443,
      metricsPort: 8080,
      certificate: { mode: 'self' },
      webhookService: 'emuv-webhook',
      webhookConfiguration: 'emuv',
      webhookSecret: 'emuv-webhook-tls',
      certCheckIntervalMs: 3_600_000,
      logLevel: 'info',
    });
  });

  it('EMUV_OPERATOR_* variables, then the downward API; a flag wins', () => {
    const env = { POD_NAMESPACE: 'x', POD_NAME: 'op-1', EMUV_OPERATOR_WORKERS: '8', EMUV_OPERATOR_WEBHOOK: 'off' };
    expect(parseOperatorConfig(['--workers', '4'], env)).toMatchObject({ namespace: 'x', identity: 'op-1', workers: 4, webhook: false });
    expect(parseOperatorConfig([], { ...env, EMUV_OPERATOR_NAMESPACE: 'y', EMUV_OPERATOR_IDENTITY: 'op-2' })).toMatchObject({
      namespace: 'y',
      identity: 'op-2',
    });
  });

  it('the variables of the interposer contract and of the agent are not read', () => {
    const c = parseOperatorConfig([], { EMUV_LOG_LEVEL: 'debug', EMUV_WORKERS: '2', EMUV_AGENT_LOG_LEVEL: 'debug' });
    expect(c).toMatchObject({ logLevel: 'info', workers: 8 });
  });

  it('kubeconfig: the flag, then EMUV_OPERATOR_KUBECONFIG, then KUBECONFIG, else in-cluster', () => {
    const env = { EMUV_OPERATOR_KUBECONFIG: '/own', KUBECONFIG: '/kubectl' };
    expect(parseOperatorConfig(['--kubeconfig=/flag'], env).kubeconfig).toEqual({ path: '/flag', from: '--kubeconfig' });
    expect(parseOperatorConfig([], env).kubeconfig).toEqual({ path: '/own', from: 'EMUV_OPERATOR_KUBECONFIG' });
    expect(parseOperatorConfig([], { KUBECONFIG: '/kubectl' }).kubeconfig).toEqual({ path: '/kubectl', from: 'KUBECONFIG' });
    expect(parseOperatorConfig([], {}).kubeconfig).toBeNull();
  });

  it('booleans: on/off and true/false alike, from flags and variables', () => {
    expect(parseOperatorConfig(['--leader-elect=false', '--controller', 'true'], { EMUV_OPERATOR_WEBHOOK: 'false' })).toMatchObject({
      leaderElect: false,
      controller: true,
      webhook: false,
    });
    expect(parseOperatorConfig(['--webhook'], { EMUV_OPERATOR_WEBHOOK: 'off' }).webhook).toBe(true);
  });

  it('provided certificates need both files', () => {
    expect(parseOperatorConfig(['--cert-mode=provided', '--tls-cert-file=/c', '--tls-key-file=/k'], {}).certificate).toEqual({
      mode: 'provided',
      certFile: '/c',
      keyFile: '/k',
    });
  });

  it.each([
    [['--workers', '0'], '--workers 0: expected an integer from 1 to 32'],
    [['--cert-mode', 'acme'], '--cert-mode acme: expected self or provided'],
    [['--cert-mode', 'provided'], '--cert-mode provided needs --tls-cert-file and --tls-key-file'],
    [['--controller', 'off', '--webhook', 'off'], '--controller off and --webhook off: nothing to run'],
    [['--cert-check-interval', '1d'], '--cert-check-interval 1d: expected a duration like 90s, 30m or 1h'],
    [['--nope'], '--nope: unknown flag of emuv-operator; run with --help for its flags'],
    [['stray'], 'unexpected argument stray'],
    [['--log-level', 'trace'], '--log-level trace: expected debug, info, warn or error'],
    [['--controller', 'maybe'], '--controller maybe: expected on or off (or true, false)'],
    [['--workers'], '--workers: needs a value (1-32)'],
  ])('%j -> %s', (argv, message) => {
    expect(() => parseOperatorConfig(argv, {})).toThrow(ConfigError);
    expect(() => parseOperatorConfig(argv, {})).toThrow(message);
  });

  it.each([
    [{ EMUV_OPERATOR_WORKERS: 'many' }, 'EMUV_OPERATOR_WORKERS=many: expected an integer from 1 to 32'],
    [{ EMUV_OPERATOR_CONTROLLER: 'yes' }, 'EMUV_OPERATOR_CONTROLLER=yes: expected on or off (or true, false)'],
    [{ EMUV_OPERATOR_CERT_CHECK_INTERVAL: '1 h' }, 'EMUV_OPERATOR_CERT_CHECK_INTERVAL="1 h": expected a duration'],
  ])('a bad variable %j is refused, naming it', (env, message) => {
    expect(() => parseOperatorConfig([], env)).toThrow(message);
  });

  it('usage lists every flag with its variable', () => {
    expect(usage()).toContain('--webhook-port');
    expect(usage()).toContain('[EMUV_OPERATOR_WEBHOOK_PORT]');
    expect(usage()).toContain('[EMUV_OPERATOR_KUBECONFIG, then KUBECONFIG]');
    expect(usage()).toContain('[EMUV_OPERATOR_NAMESPACE, then POD_NAMESPACE]');
  });

  it('docs/operator.md holds the table generated from the flags', () => {
    const doc = readFileSync(new URL('../docs/operator.md', import.meta.url), 'utf8');
    expect(doc).toContain(markdownFlags(OPERATOR_COMMAND));
  });
});

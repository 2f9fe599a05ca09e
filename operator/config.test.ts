import { describe, expect, it } from 'vitest';
import { parseOperatorConfig, usage } from './config.ts';

describe('parseOperatorConfig', () => {
  it('defaults', () => {
    expect(parseOperatorConfig([], {}, 'host-1')).toMatchObject({
      namespace: 'emuv-system',
      identity: 'host-1',
      controller: true,
      webhook: true,
      leaderElect: true,
      workers: 8,
      webhookPort: 9443,
      metricsPort: 8080,
      certMode: 'self',
      certCheckIntervalMs: 3_600_000,
      logLevel: 'info',
    });
  });
  it('pod downward API env and EMUV_* env, flags win', () => {
    const c = parseOperatorConfig(['--workers', '4'], { POD_NAMESPACE: 'x', POD_NAME: 'op-1', EMUV_WORKERS: '8', EMUV_WEBHOOK: 'off' });
    expect(c).toMatchObject({ namespace: 'x', identity: 'op-1', workers: 4, webhook: false });
  });
  it.each([
    [['--workers', '0'], '--workers: expected an integer from 1 to 32'],
    [['--cert-mode', 'acme'], '--cert-mode: expected self or provided'],
    [['--cert-mode', 'provided'], 'needs --tls-cert-file and --tls-key-file'],
    [['--controller', 'off', '--webhook', 'off'], 'nothing to run'],
    [['--cert-check-interval', '1d'], 'expected a duration'],
    [['--nope'], 'failed to parse flags'],
    [['--log-level', 'trace'], '--log-level: expected one of'],
  ])('%j -> %s', (argv, message) => {
    expect(() => parseOperatorConfig(argv, {})).toThrow(message);
  });
  it('usage lists every flag with its env name', () => {
    expect(usage()).toContain('--webhook-port');
    expect(usage()).toContain('EMUV_WEBHOOK_PORT');
  });
});

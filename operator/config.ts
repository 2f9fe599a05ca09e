/**
 * Operator configuration: flags with environment equivalents (`--webhook-port` <-> `EMUV_WEBHOOK_PORT`;
 * a flag wins). Pure: main.ts passes argv and env in. Errors name the flag and what it accepts.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../common/errors.ts';
import { LOG_LEVELS } from '../common/log.ts';
import type { LogLevel } from '../common/log.ts';
import { DEFAULT_NAMESPACE, LEADER_LEASE, WEBHOOK_CONFIGURATION, WEBHOOK_SECRET, WEBHOOK_SERVICE } from './names.ts';

const FLAGS = {
  namespace: { default: '', help: 'namespace of the operator (default: POD_NAMESPACE, else emuv-system)' },
  identity: { default: '', help: 'leader-election identity (default: POD_NAME, else the host name)' },
  kubeconfig: { default: '', help: 'kubeconfig file (default: in-cluster configuration)' },
  controller: { default: 'on', help: 'on: run the EmuvPolicy controller (leader-elected); off: webhook only' },
  webhook: { default: 'on', help: 'on: serve the pod admission webhook; off: controller only' },
  'leader-elect': { default: 'on', help: 'on: one active controller through a Lease; off: always lead (one replica only)' },
  'lease-name': { default: LEADER_LEASE, help: 'name of the leader-election Lease' },
  // Reconciles wait on the apiserver, not the CPU: 8 in flight converge 1,000 nodes x 20 policies in 6.5 s
  // against a real apiserver on 2 cores, where 2 took 10.3 s (docs/benchmarks.md).
  workers: { default: '8', help: 'concurrent reconciles (1-32)' },
  'webhook-port': { default: '9443', help: 'HTTPS port of /mutate-pods' },
  'metrics-port': { default: '8080', help: 'HTTP port of /metrics, /healthz, /readyz (0: off)' },
  'cert-mode': {
    default: 'self',
    help: 'self: the operator manages a CA and certificate in a Secret; provided: read --tls-cert-file/--tls-key-file',
  },
  'tls-cert-file': { default: '', help: 'serving certificate (PEM), cert-mode provided' },
  'tls-key-file': { default: '', help: 'serving key (PEM), cert-mode provided' },
  'webhook-service': { default: WEBHOOK_SERVICE, help: 'Service in front of the webhook (certificate names)' },
  'webhook-configuration': { default: WEBHOOK_CONFIGURATION, help: 'MutatingWebhookConfiguration whose caBundle is kept current' },
  'webhook-secret': { default: WEBHOOK_SECRET, help: 'Secret holding the self-managed CA and certificate' },
  'cert-check-interval': { default: '1h', help: 'how often certificates are checked for rotation (e.g. 30m, 1h)' },
  'log-level': { default: 'info', help: 'debug, info, warn or error' },
} as const;

type FlagName = keyof typeof FLAGS;

export interface OperatorConfig {
  namespace: string;
  identity: string;
  kubeconfig: string;
  controller: boolean;
  webhook: boolean;
  leaderElect: boolean;
  leaseName: string;
  workers: number;
  webhookPort: number;
  metricsPort: number;
  certMode: 'self' | 'provided';
  tlsCertFile: string;
  tlsKeyFile: string;
  webhookService: string;
  webhookConfiguration: string;
  webhookSecret: string;
  certCheckIntervalMs: number;
  logLevel: LogLevel;
}

const envName = (flag: string) => `EMUV_${flag.toUpperCase().replace(/-/g, '_')}`;

function onOff(flag: FlagName, v: string): boolean {
  if (v === 'on' || v === 'true') return true;
  if (v === 'off' || v === 'false') return false;
  throw new ConfigError(`--${flag}: expected on or off, got "${v}"`);
}

function int(flag: FlagName, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || n < min || n > max) throw new ConfigError(`--${flag}: expected an integer from ${min} to ${max}, got "${v}"`);
  return n;
}

function duration(flag: FlagName, v: string): number {
  const m = /^([1-9][0-9]*)(s|m|h)$/.exec(v);
  if (!m) throw new ConfigError(`--${flag}: expected a duration like 90s, 30m or 1h, got "${v}"`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
}

export function parseOperatorConfig(argv: string[], env: Record<string, string | undefined>, hostname = 'emuv-operator'): OperatorConfig {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: Object.fromEntries(Object.keys(FLAGS).map((k) => [k, { type: 'string' as const }])),
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new ConfigError(`failed to parse flags: ${(err as Error).message}`);
  }
  const get = (flag: FlagName): string => {
    const v = values[flag];
    if (typeof v === 'string') return v;
    return env[envName(flag)] ?? FLAGS[flag].default;
  };
  const certMode = get('cert-mode');
  if (certMode !== 'self' && certMode !== 'provided') throw new ConfigError(`--cert-mode: expected self or provided, got "${certMode}"`);
  const logLevel = get('log-level');
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    throw new ConfigError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  const cfg: OperatorConfig = {
    namespace: get('namespace') || env.POD_NAMESPACE || DEFAULT_NAMESPACE,
    identity: get('identity') || env.POD_NAME || hostname,
    kubeconfig: get('kubeconfig') || env.KUBECONFIG || '',
    controller: onOff('controller', get('controller')),
    webhook: onOff('webhook', get('webhook')),
    leaderElect: onOff('leader-elect', get('leader-elect')),
    leaseName: get('lease-name'),
    workers: int('workers', get('workers'), 1, 32),
    webhookPort: int('webhook-port', get('webhook-port'), 1, 65535),
    metricsPort: int('metrics-port', get('metrics-port'), 0, 65535),
    certMode,
    tlsCertFile: get('tls-cert-file'),
    tlsKeyFile: get('tls-key-file'),
    webhookService: get('webhook-service'),
    webhookConfiguration: get('webhook-configuration'),
    webhookSecret: get('webhook-secret'),
    certCheckIntervalMs: duration('cert-check-interval', get('cert-check-interval')),
    logLevel: logLevel as LogLevel,
  };
  if (cfg.certMode === 'provided' && (!cfg.tlsCertFile || !cfg.tlsKeyFile)) {
    throw new ConfigError('--cert-mode provided needs --tls-cert-file and --tls-key-file');
  }
  if (!cfg.controller && !cfg.webhook) throw new ConfigError('--controller off and --webhook off: nothing to run');
  return cfg;
}

/** Help text generated from the flag table. */
export function usage(): string {
  return Object.entries(FLAGS)
    .map(([k, v]) => `  --${k.padEnd(24)} ${v.help} [${envName(k)}, default "${v.default}"]`)
    .join('\n');
}

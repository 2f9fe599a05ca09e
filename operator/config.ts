/**
 * Operator configuration: its flag table (common/flags.ts) and its typed result. Every flag `--some-flag`
 * has the variable `EMUV_OPERATOR_SOME_FLAG` (a flag wins); the namespace and identity fall back to the
 * downward API's POD_NAMESPACE and POD_NAME, the kubeconfig to KUBECONFIG. Pure: main.ts passes argv and
 * the environment in. Errors name the flag or variable and what it accepts.
 */
import { ConfigError } from '../common/errors.ts';
import {
  defineCommand,
  duration,
  int,
  kubeconfigFlag,
  kubeconfigRef,
  onOff,
  oneOf,
  optionalText,
  parseFlags,
  path,
  usage as renderUsage,
  type KubeconfigRef,
} from '../common/flags.ts';
import { LOG_LEVELS, type LogLevel } from '../common/log.ts';
import { DEFAULT_NAMESPACE, LEADER_LEASE, WEBHOOK_CONFIGURATION, WEBHOOK_SECRET, WEBHOOK_SERVICE } from './names.ts';

/**
 * The operator's own prefix: `EMUV_*` is the interposer's contract (common/contracts/interposer.ts), and the
 * `emuv` commands read `EMUV_AGENT_*`; test/contract/env-prefixes.test.ts keeps the three apart.
 */
export const OPERATOR_ENV_PREFIX = 'EMUV_OPERATOR_';

const name = (what: string) => path(`<${what}>`);

export const OPERATOR_COMMAND = defineCommand({
  command: 'emuv-operator',
  envPrefix: OPERATOR_ENV_PREFIX,
  flags: {
    namespace: {
      type: name('namespace'),
      default: DEFAULT_NAMESPACE,
      fallbackEnv: ['POD_NAMESPACE'],
      help: 'namespace of the operator (its Lease and certificate Secret)',
    },
    identity: {
      type: optionalText('<name>'),
      default: '',
      defaultText: 'the host name',
      fallbackEnv: ['POD_NAME'],
      help: 'leader-election identity',
    },
    kubeconfig: kubeconfigFlag,
    controller: {
      type: onOff,
      default: 'on',
      help: 'on: run the EmuvPolicy controller (leader-elected); off: webhook only',
      doc: '`on`: run the EmuvPolicy controller (leader-elected); `off`: webhook only',
    },
    webhook: {
      type: onOff,
      default: 'on',
      help: 'on: serve the pod admission webhook; off: controller only',
      doc: '`on`: serve the pod admission webhook; `off`: controller only',
    },
    'leader-elect': {
      type: onOff,
      default: 'on',
      help: 'on: one active controller through a Lease; off: always lead (one replica only)',
      doc: '`on`: one active controller through a Lease; `off`: always lead (one replica only)',
    },
    'lease-name': { type: name('name'), default: LEADER_LEASE, help: 'name of the leader-election Lease' },
    // Reconciles wait on the apiserver, not the CPU: 8 in flight converge 1,000 nodes x 20 policies in 6.2 s
    // against a real apiserver on 2 cores, where 2 took 10.3 s (docs/benchmarks.md).
    workers: { type: int(1, 32), default: '8', help: 'concurrent reconciles' },
    'webhook-port': { type: int(1, 65535), default: '9443', help: 'HTTPS port of /mutate-pods', doc: 'HTTPS port of `/mutate-pods`' },
    'metrics-port': {
      type: int(0, 65535),
      default: '8080',
      help: 'HTTP port of /metrics, /healthz, /readyz (0: off)',
      doc: 'HTTP port of `/metrics`, `/healthz`, `/readyz` (`0`: off)',
    },
    'cert-mode': {
      type: oneOf(['self', 'provided']),
      default: 'self',
      help: 'self: the operator manages a CA and certificate in a Secret; provided: read --tls-cert-file and --tls-key-file',
      doc: '`self`: the operator manages a CA and certificate in a Secret; `provided`: read `--tls-cert-file` and `--tls-key-file` ([Certificates](#certificates))',
    },
    'tls-cert-file': { type: optionalText('<path>'), default: '', help: 'serving certificate (PEM), with --cert-mode provided' },
    'tls-key-file': { type: optionalText('<path>'), default: '', help: 'serving key (PEM), with --cert-mode provided' },
    'webhook-service': { type: name('name'), default: WEBHOOK_SERVICE, help: 'Service in front of the webhook (certificate names)' },
    'webhook-configuration': {
      type: name('name'),
      default: WEBHOOK_CONFIGURATION,
      help: 'MutatingWebhookConfiguration whose caBundle is kept current',
    },
    'webhook-secret': { type: name('name'), default: WEBHOOK_SECRET, help: 'Secret holding the self-managed CA and certificate' },
    'cert-check-interval': { type: duration, default: '1h', help: 'how often certificates are checked for rotation' },
    'log-level': {
      type: oneOf(LOG_LEVELS),
      default: 'info',
      help: 'debug, info, warn or error; logs are JSON lines on stdout',
      doc: '`debug`, `info`, `warn` or `error`; logs are JSON lines on stdout',
    },
  },
});

export type CertificateSource = { mode: 'self' } | { mode: 'provided'; certFile: string; keyFile: string };

export interface OperatorConfig {
  namespace: string;
  identity: string;
  kubeconfig: KubeconfigRef | null;
  controller: boolean;
  webhook: boolean;
  leaderElect: boolean;
  leaseName: string;
  workers: number;
  webhookPort: number;
  metricsPort: number;
  certificate: CertificateSource;
  webhookService: string;
  webhookConfiguration: string;
  webhookSecret: string;
  certCheckIntervalMs: number;
  logLevel: LogLevel;
}

export function parseOperatorConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  hostname = 'emuv-operator',
): OperatorConfig {
  const { values: v, from } = parseFlags(OPERATOR_COMMAND, argv, env);
  let certificate: CertificateSource = { mode: 'self' };
  if (v['cert-mode'] === 'provided') {
    const certFile = v['tls-cert-file'];
    const keyFile = v['tls-key-file'];
    if (!certFile || !keyFile) throw new ConfigError('--cert-mode provided needs --tls-cert-file and --tls-key-file');
    certificate = { mode: 'provided', certFile, keyFile };
  }
  if (!v.controller && !v.webhook) throw new ConfigError('--controller off and --webhook off: nothing to run');
  return {
    namespace: v.namespace,
    identity: v.identity ?? hostname,
    kubeconfig: kubeconfigRef(v.kubeconfig, from.kubeconfig),
    controller: v.controller,
    webhook: v.webhook,
    leaderElect: v['leader-elect'],
    leaseName: v['lease-name'],
    workers: v.workers,
    webhookPort: v['webhook-port'],
    metricsPort: v['metrics-port'],
    certificate,
    webhookService: v['webhook-service'],
    webhookConfiguration: v['webhook-configuration'],
    webhookSecret: v['webhook-secret'],
    certCheckIntervalMs: v['cert-check-interval'],
    logLevel: v['log-level'],
  };
}

/** The `--help` text, generated from the table. */
export function usage(): string {
  return renderUsage(OPERATOR_COMMAND);
}

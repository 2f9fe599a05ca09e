/**
 * Keeping the webhook's certificate current, on the shared periodic loop (common/periodic.ts): every
 * `checkIntervalMs` (default 1 h) the certificate is loaded again (self-managed: CertManager.ensure(), which
 * reissues and rotates; provided: the files re-read and checked) and handed to the server, which swaps it
 * for new connections. While a self-managed CA has no MutatingWebhookConfiguration to go into yet (the
 * operator started before the configuration was applied), the check runs every `caBundleRetryMs` instead,
 * or every emuv pod would be refused until the next hourly check. One check at a time: the two loops share
 * the pass in flight.
 */
import type { Logger } from '../../common/log.ts';
import { errFields } from '../../common/log.ts';
import { Periodic, type Timer } from '../../common/periodic.ts';

export interface TlsPair {
  certPem: string;
  keyPem: string;
}

/** How often a missing MutatingWebhookConfiguration is looked for again (self-managed certificates). */
export const CA_BUNDLE_RETRY_MS = 5000;

export interface CertUpkeep {
  /** One check now (what the timers do). */
  check(): Promise<void>;
  stop(): Promise<void>;
}

export function startCertUpkeep(o: {
  /** Loads (and for self-managed certificates, ensures) the serving certificate. */
  load: () => Promise<TlsPair>;
  /** Hands a certificate to the server. */
  apply: (tls: TlsPair) => void;
  checkIntervalMs: number;
  /** True while the CA bundle could not be written (CertManager.caBundlePending); always false for provided certificates. */
  caBundlePending: () => boolean;
  caBundleRetryMs?: number;
  timer?: Timer;
  log: Logger;
}): CertUpkeep {
  const check = new Periodic(
    async () => {
      try {
        o.apply(await o.load());
      } catch (err) {
        // The server keeps the certificate it has; the next check tries again.
        o.log.error('certificate check failed', errFields(err));
      }
    },
    o.checkIntervalMs,
    o.timer,
  );
  const pending = new Periodic(
    async () => (o.caBundlePending() ? check.run() : undefined),
    o.caBundleRetryMs ?? CA_BUNDLE_RETRY_MS,
    o.timer,
  );
  check.start();
  pending.start();
  return {
    check: () => check.run(),
    stop: async () => {
      await Promise.all([pending.halt(), check.halt()]);
    },
  };
}

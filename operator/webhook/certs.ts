/**
 * The webhook's TLS material.
 *
 * Self-managed (default): a CA and a serving certificate live in one Secret (`ca.crt`, `ca.key`,
 * `tls.crt`, `tls.key`, and `ca-previous.crt` during a CA rotation). Every replica calls `ensure()` at
 * start and periodically: it creates the Secret if absent, reissues the serving certificate when it nears
 * expiry, no longer matches the service names, or was not issued by the current CA, rotates the CA when
 * it nears expiry (the old CA stays in the bundle until it expires, so replicas still serving a
 * certificate from it keep working), and keeps `caBundle` of the MutatingWebhookConfiguration equal to
 * the bundle. Writes use resourceVersion; a replica that loses a race adopts what the winner wrote.
 *
 * User-provided: `loadProvidedCertificate` reads a cert/key pair (e.g. from cert-manager) and checks it;
 * the caBundle is then the provider's business (cert-manager's cainjector, or Helm values).
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { Clock } from '../clock.ts';
import { isConflict, isNotFound } from '../../common/kube/errors.ts';
import type { JsonPatchOp } from '../../common/kube/json-patch.ts';
import type { CertApi, Secret } from '../kube/api.ts';
import { issueCertificate } from './x509.ts';
import type { KeyPairPem } from './x509.ts';
import type { Logger } from '../../common/log.ts';

export interface ServingCertificate {
  certPem: string;
  keyPem: string;
  /** PEM CA certificates the apiserver must trust (current CA first). */
  caBundlePem: string;
}

export interface CertConfig {
  namespace: string;
  secretName: string;
  serviceName: string;
  webhookConfigName: string;
  caValidityDays?: number;
  certValidityDays?: number;
  /** Reissue the serving certificate when fewer days than this remain. */
  certRenewBeforeDays?: number;
  /** Rotate the CA when fewer days than this remain. */
  caRenewBeforeDays?: number;
}

const DAY = 86_400_000;
const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));

export function serviceDnsNames(service: string, namespace: string): string[] {
  return [`${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`, `${service}.${namespace}`, service];
}

function tryCert(pem: string | undefined): X509Certificate | undefined {
  if (!pem) return undefined;
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

function keyMatches(cert: X509Certificate, keyPem: string | undefined): boolean {
  if (!keyPem) return false;
  try {
    return cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

export class CertManager {
  private readonly api: CertApi;
  private readonly clock: Clock;
  private readonly cfg: Required<CertConfig>;
  private readonly log: Logger;
  /**
   * True while the last ensure() found no MutatingWebhookConfiguration to write the caBundle into (the
   * operator started before it was created, e.g. by Helm or `kubectl apply -f deploy/`): the caller
   * then retries soon instead of at the next rotation check, or every emuv pod would be refused.
   */
  caBundlePending = false;

  constructor(deps: { api: CertApi; clock: Clock; config: CertConfig; logger: Logger }) {
    this.api = deps.api;
    this.clock = deps.clock;
    this.cfg = {
      caValidityDays: 3650,
      certValidityDays: 365,
      certRenewBeforeDays: 30,
      caRenewBeforeDays: 365,
      ...deps.config,
    };
    this.log = deps.logger;
  }

  /** Makes the Secret and the caBundle current; returns what the server should serve. */
  async ensure(): Promise<ServingCertificate> {
    const serving = await this.ensureSecret();
    await this.ensureCaBundle(serving.caBundlePem);
    return serving;
  }

  private async ensureSecret(): Promise<ServingCertificate> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const { namespace, secretName } = this.cfg;
      const existing = await this.api.getSecret(namespace, secretName);
      const next = await this.desiredData(existing?.data);
      if (existing && !next.changed) return next.serving;
      const secret: Secret = {
        metadata: {
          name: secretName,
          namespace,
          labels: { 'app.kubernetes.io/managed-by': 'emuv-operator' },
          ...(existing?.metadata.resourceVersion ? { resourceVersion: existing.metadata.resourceVersion } : {}),
        },
        type: 'kubernetes.io/tls',
        data: next.data,
      };
      try {
        if (existing) await this.api.replaceSecret(secret);
        else await this.api.createSecret(secret);
        this.log.info('webhook certificate written', { reason: next.reason, secret: secretName });
        return next.serving;
      } catch (err) {
        // Another replica wrote first: read again and adopt its certificates.
        if (isConflict(err)) continue;
        throw new Error(`failed to write Secret ${namespace}/${secretName}`, { cause: err });
      }
    }
    throw new Error(`failed to write Secret ${this.cfg.namespace}/${this.cfg.secretName}: kept losing update races`);
  }

  /** Pure decision over the Secret's data: keep, reissue the serving cert, or rotate the CA. */
  async desiredData(data: Record<string, string> | undefined): Promise<{
    changed: boolean;
    reason: string;
    data: Record<string, string>;
    serving: ServingCertificate;
  }> {
    const now = this.clock.now();
    const caPem = unb64(data?.['ca.crt']);
    const caKeyPem = unb64(data?.['ca.key']);
    const tlsPem = unb64(data?.['tls.crt']);
    const tlsKeyPem = unb64(data?.['tls.key']);
    const prevPem = unb64(data?.['ca-previous.crt']);
    const ca = tryCert(caPem);
    const tls = tryCert(tlsPem);
    const dnsNames = serviceDnsNames(this.cfg.serviceName, this.cfg.namespace);

    let reason = '';
    let caPair: KeyPairPem | undefined = ca && caKeyPem && keyMatches(ca, caKeyPem) ? { certPem: caPem!, keyPem: caKeyPem } : undefined;
    let previous = tryCert(prevPem) && Date.parse(new X509Certificate(prevPem!).validTo) > now ? prevPem : undefined;
    if (!caPair) {
      reason = data ? 'CA missing or unreadable' : 'created';
      caPair = await this.issueCa(now);
      previous = undefined;
    } else if (Date.parse(ca!.validTo) - now < this.cfg.caRenewBeforeDays * DAY) {
      reason = 'CA expires soon';
      previous = caPair.certPem;
      caPair = await this.issueCa(now);
    }
    const caCert = new X509Certificate(caPair.certPem);
    let servingPair: KeyPairPem | undefined = tls && tlsKeyPem ? { certPem: tlsPem!, keyPem: tlsKeyPem } : undefined;
    const servingOk =
      !!tls &&
      keyMatches(tls, tlsKeyPem) &&
      tls.checkIssued(caCert) &&
      tls.verify(caCert.publicKey) &&
      Date.parse(tls.validTo) - now >= this.cfg.certRenewBeforeDays * DAY &&
      Date.parse(tls.validFrom) <= now &&
      dnsNames.every((n) => tls.checkHost(n, { wildcards: false }) === n);
    if (!servingOk || reason) {
      if (!reason) reason = 'serving certificate expires soon, names changed or issuer changed';
      servingPair = await issueCertificate({
        commonName: dnsNames[0]!,
        altNames: dnsNames,
        notBefore: new Date(now - 5 * 60_000),
        notAfter: new Date(now + this.cfg.certValidityDays * DAY),
        isCa: false,
        issuer: caPair,
      });
    }
    const out: Record<string, string> = {
      'ca.crt': b64(caPair.certPem),
      'ca.key': b64(caPair.keyPem),
      'tls.crt': b64(servingPair!.certPem),
      'tls.key': b64(servingPair!.keyPem),
    };
    if (previous) out['ca-previous.crt'] = b64(previous);
    const changed = reason !== '' || (data?.['ca-previous.crt'] !== undefined) !== (previous !== undefined);
    return {
      changed,
      reason: reason || 'previous CA expired',
      data: out,
      serving: { certPem: servingPair!.certPem, keyPem: servingPair!.keyPem, caBundlePem: caPair.certPem + (previous ?? '') },
    };
  }

  private issueCa(now: number): Promise<KeyPairPem> {
    return issueCertificate({
      commonName: `${this.cfg.serviceName}-ca`,
      notBefore: new Date(now - 5 * 60_000),
      notAfter: new Date(now + this.cfg.caValidityDays * DAY),
      isCa: true,
    });
  }

  private async ensureCaBundle(bundlePem: string): Promise<void> {
    const name = this.cfg.webhookConfigName;
    const cfg = await this.api.getMutatingWebhookConfiguration(name);
    if (!cfg) {
      if (!this.caBundlePending) this.log.info('MutatingWebhookConfiguration not found; caBundle not set yet', { name });
      this.caBundlePending = true;
      return;
    }
    this.caBundlePending = false;
    const want = b64(bundlePem);
    const ops: JsonPatchOp[] = [];
    (cfg.webhooks ?? []).forEach((w, i) => {
      if (w.clientConfig?.caBundle !== want) {
        // Guard each write with the webhook name, so a reordered list is never patched blindly.
        ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: w.name });
        ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: want });
      }
    });
    if (ops.length === 0) return;
    try {
      await this.api.patchMutatingWebhookConfiguration(name, ops);
      this.log.info('caBundle updated', { name });
    } catch (err) {
      if (isNotFound(err)) return;
      throw new Error(`failed to patch caBundle of MutatingWebhookConfiguration ${name}`, { cause: err });
    }
  }
}

/** Reads and checks a user-provided pair (PEM text); throws with the reason when they do not match. */
export function loadProvidedCertificate(certPem: string, keyPem: string, now: number): { certPem: string; keyPem: string } {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new Error('failed to load the provided webhook certificate: not a PEM certificate', { cause: err });
  }
  if (!keyMatches(cert, keyPem)) throw new Error('failed to load the provided webhook certificate: the key does not match it');
  if (Date.parse(cert.validTo) <= now) throw new Error(`failed to load the provided webhook certificate: expired at ${cert.validTo}`);
  return { certPem, keyPem };
}

import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../clock.ts';
import { FakeKube } from '../../test/fakes/operator-kube.ts';
import { CertManager, loadProvidedCertificate } from './certs.ts';
import { issueCertificate } from './x509.ts';
import { nopLogger } from '../../common/log.ts';

const DAY = 86_400_000;
const config = { namespace: 'emuv-system', secretName: 'emuv-webhook-tls', serviceName: 'emuv-webhook', webhookConfigName: 'emuv' };

function setup() {
  const clock = new FakeClock(Date.now());
  const api = new FakeKube();
  api.webhookConfigs.set('emuv', { metadata: { name: 'emuv' }, webhooks: [{ name: 'pods.emuv.io', clientConfig: {} }] });
  const mgr = new CertManager({ api, clock, config, logger: nopLogger });
  return { clock, api, mgr };
}
const secretData = (api: FakeKube) => api.secrets.get('emuv-system/emuv-webhook-tls')!.data!;
const pem = (api: FakeKube, key: string) => Buffer.from(secretData(api)[key]!, 'base64').toString();
const caBundle = (api: FakeKube) => Buffer.from(api.webhookConfigs.get('emuv')!.webhooks![0]!.clientConfig!.caBundle!, 'base64').toString();

describe('CertManager', () => {
  it('creates the Secret and sets the caBundle on first start', async () => {
    const { api, mgr } = setup();
    const s = await mgr.ensure();
    expect(api.summary()).toEqual([
      'get secrets/emuv-webhook-tls',
      'create secrets/emuv-webhook-tls',
      'get mutatingwebhookconfigurations/emuv',
      'patch mutatingwebhookconfigurations/emuv',
    ]);
    const leaf = new X509Certificate(s.certPem);
    const ca = new X509Certificate(pem(api, 'ca.crt'));
    expect(leaf.checkIssued(ca) && leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.checkHost('emuv-webhook.emuv-system.svc')).toBe('emuv-webhook.emuv-system.svc');
    expect(caBundle(api)).toBe(pem(api, 'ca.crt'));
    expect(api.secrets.get('emuv-system/emuv-webhook-tls')!.type).toBe('kubernetes.io/tls');
  });

  it('reports the caBundle pending while the webhook configuration does not exist, and fills it once it does', async () => {
    const { api, mgr } = setup();
    const mwc = api.webhookConfigs.get('emuv')!;
    api.webhookConfigs.delete('emuv');
    await mgr.ensure();
    expect(mgr.caBundlePending).toBe(true);
    api.webhookConfigs.set('emuv', mwc);
    await mgr.ensure();
    expect(mgr.caBundlePending).toBe(false);
    expect(caBundle(api)).toBe(pem(api, 'ca.crt'));
  });

  it('changes nothing on a second run', async () => {
    const { api, mgr } = setup();
    const a = await mgr.ensure();
    api.actions.length = 0;
    const b = await mgr.ensure();
    expect(b.certPem).toBe(a.certPem);
    expect(api.summary()).toEqual(['get secrets/emuv-webhook-tls', 'get mutatingwebhookconfigurations/emuv']);
  });

  it('reissues the serving certificate before it expires, keeping the CA', async () => {
    const { api, mgr, clock } = setup();
    const a = await mgr.ensure();
    const caBefore = pem(api, 'ca.crt');
    clock.advance(336 * DAY);
    const b = await mgr.ensure();
    expect(b.certPem).not.toBe(a.certPem);
    expect(pem(api, 'ca.crt')).toBe(caBefore);
    expect(new X509Certificate(b.certPem).checkIssued(new X509Certificate(caBefore))).toBe(true);
  });

  it('rotates the CA with an overlap: the old CA stays in the bundle', async () => {
    const { api, mgr, clock } = setup();
    await mgr.ensure();
    const oldCa = pem(api, 'ca.crt');
    clock.advance((3650 - 364) * DAY);
    const s = await mgr.ensure();
    const newCa = pem(api, 'ca.crt');
    expect(newCa).not.toBe(oldCa);
    expect(pem(api, 'ca-previous.crt')).toBe(oldCa);
    expect(caBundle(api)).toBe(newCa + oldCa);
    expect(s.caBundlePem).toBe(newCa + oldCa);
    expect(new X509Certificate(s.certPem).checkIssued(new X509Certificate(newCa))).toBe(true);
    // Once the old CA has expired it leaves the bundle.
    clock.advance(365 * DAY);
    const later = await mgr.ensure();
    expect(later.caBundlePem).toBe(newCa);
    expect(secretData(api)['ca-previous.crt']).toBeUndefined();
  });

  it('replaces unreadable data', async () => {
    const { api, mgr } = setup();
    api.secrets.set('emuv-system/emuv-webhook-tls', {
      metadata: { name: 'emuv-webhook-tls', namespace: 'emuv-system', resourceVersion: '7' },
      data: { 'tls.crt': 'Z2FyYmFnZQ==' },
    });
    const s = await mgr.ensure();
    expect(api.summary()).toContain('update secrets/emuv-webhook-tls');
    expect(new X509Certificate(s.certPem).ca).toBe(false);
  });

  it('reissues when the service name changes', async () => {
    const { api, clock, mgr } = setup();
    await mgr.ensure();
    const renamed = new CertManager({ api, clock, config: { ...config, serviceName: 'emuv-admission' }, logger: nopLogger });
    const s = await renamed.ensure();
    expect(new X509Certificate(s.certPem).checkHost('emuv-admission.emuv-system.svc')).toBe('emuv-admission.emuv-system.svc');
  });

  it('adopts what another replica wrote after losing the create race', async () => {
    const { api, mgr, clock } = setup();
    const winner = await new CertManager({ api, clock, config, logger: nopLogger }).ensure();
    api.actions.length = 0;
    // Our replica's first read happened before the winner's create landed.
    const realGet = api.getSecret.bind(api);
    let stale = true;
    api.getSecret = async (ns, name) => {
      if (stale) {
        stale = false;
        return undefined;
      }
      return realGet(ns, name);
    };
    const ours = await mgr.ensure();
    expect(ours.certPem).toBe(winner.certPem);
    expect(ours.caBundlePem).toBe(winner.caBundlePem);
    expect(api.summary().filter((a) => !a.startsWith('get'))).toEqual(['create secrets/emuv-webhook-tls']);
  });
});

describe('loadProvidedCertificate', async () => {
  const now = Date.now();
  const ca = await issueCertificate({ commonName: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + DAY), isCa: true });
  const leaf = await issueCertificate({
    commonName: 'x',
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + DAY),
    isCa: false,
    issuer: ca,
    altNames: ['x'],
  });
  it('accepts a matching pair', () => {
    expect(loadProvidedCertificate(leaf.certPem, leaf.keyPem, now).certPem).toBe(leaf.certPem);
  });
  it.each([
    ['mismatched key', () => loadProvidedCertificate(leaf.certPem, ca.keyPem, now), 'the key does not match'],
    ['garbage cert', () => loadProvidedCertificate('nope', leaf.keyPem, now), 'not a PEM certificate'],
    ['expired', () => loadProvidedCertificate(leaf.certPem, leaf.keyPem, now + 2 * DAY), 'expired'],
  ])('rejects %s', (_n, fn, message) => {
    expect(fn).toThrow(message);
  });
});

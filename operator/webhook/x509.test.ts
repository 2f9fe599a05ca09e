import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:https';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { issueCertificate } from './x509.ts';

// Real time: the handshake test needs certificates valid today.
const now = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
const later = (days: number) => new Date(now.getTime() + days * 86_400_000);

describe('issueCertificate', async () => {
  const ca = await issueCertificate({ commonName: 'emuv-webhook-ca', notBefore: now, notAfter: later(3650), isCa: true });
  const leaf = await issueCertificate({
    commonName: 'emuv-webhook.emuv-system.svc',
    notBefore: now,
    notAfter: later(365),
    isCa: false,
    altNames: ['emuv-webhook.emuv-system.svc', 'emuv-webhook.emuv-system.svc.cluster.local', '127.0.0.1'],
    issuer: ca,
  });

  it('produces a self-signed CA that node:crypto parses and verifies', () => {
    const c = new X509Certificate(ca.certPem);
    expect(c.ca).toBe(true);
    expect(c.verify(c.publicKey)).toBe(true);
    expect(c.subject).toBe('CN=emuv-webhook-ca');
    expect(new Date(c.validTo).getTime()).toBe(later(3650).getTime());
  });

  it('produces a serving certificate signed by the CA, with SANs', () => {
    const c = new X509Certificate(leaf.certPem);
    const caCert = new X509Certificate(ca.certPem);
    expect(c.ca).toBe(false);
    expect(c.verify(caCert.publicKey)).toBe(true);
    expect(c.checkIssued(caCert)).toBe(true);
    expect(c.checkHost('emuv-webhook.emuv-system.svc')).toBe('emuv-webhook.emuv-system.svc');
    expect(c.checkHost('other.example')).toBeUndefined();
    expect(c.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(c.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
  });

  it('uses GeneralizedTime after 2049', async () => {
    const c = new X509Certificate(
      (await issueCertificate({ commonName: 'x', notBefore: now, notAfter: new Date('2051-01-02T03:04:05Z'), isCa: true })).certPem,
    );
    expect(new Date(c.validTo).toISOString()).toBe('2051-01-02T03:04:05.000Z');
  });

  it('completes a real TLS handshake that checks the chain and the host name', async () => {
    const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const get = (servername: string, caPem: string) =>
      new Promise<string>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, servername, ca: caPem, path: '/' }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve(body));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      expect(await get('emuv-webhook.emuv-system.svc', ca.certPem)).toBe('ok');
      await expect(get('wrong.name', ca.certPem)).rejects.toThrow(/altnames|Hostname/i);
      const otherCa = await issueCertificate({ commonName: 'other', notBefore: now, notAfter: later(10), isCa: true });
      await expect(get('emuv-webhook.emuv-system.svc', otherCa.certPem)).rejects.toThrow(/certificate/i);
    } finally {
      server.close();
    }
  });
});

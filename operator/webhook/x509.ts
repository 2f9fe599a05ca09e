/**
 * X.509 v3 issuance on @peculiar/x509 and WebCrypto: ECDSA P-256 keys, SHA-256 signatures. Node can parse
 * and verify certificates (X509Certificate) but cannot issue them; this is the small, fixed subset a
 * webhook needs: a self-signed CA and serving certificates with DNS/IP SANs.
 * Every certificate produced is checked by the tests with X509Certificate and a real TLS handshake.
 */
// @peculiar/x509 resolves its internals through tsyringe, which needs the Reflect metadata API; the
// polyfill must be evaluated before the library is (ES modules evaluate imports in order).
import 'reflect-metadata';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  PemConverter,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
  X509Certificate as PeculiarCertificate,
} from '@peculiar/x509';
import type { Extension, JsonGeneralName } from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { isIP } from 'node:net';

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  commonName: string;
  notBefore: Date;
  notAfter: Date;
  /** DNS names and IP addresses for the subjectAltName (serving certificates). */
  altNames?: string[];
  isCa: boolean;
  /** The issuer; omitted for a self-signed CA. */
  issuer?: KeyPairPem;
}

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' };

// One UTF8String CN, as RFC 5280 asks of new certificates (a plain string would become PrintableString).
const nameOf = (cn: string) => new Name([{ CN: [{ utf8String: cn }] }]);

// PEM blocks end with a newline, so bundles can be made by concatenation.
const pem = (der: ArrayBuffer, label: string) => `${PemConverter.encode(der, label)}\n`;

function generalName(n: string): JsonGeneralName {
  switch (isIP(n)) {
    case 4:
      return { type: 'ip', value: n };
    case 6:
      // WHATWG URL host parsing canonicalizes any IPv6 spelling (e.g. "::ffff:1.2.3.4") to hex groups.
      return { type: 'ip', value: new URL(`http://[${n}]/`).hostname.slice(1, -1) };
    default:
      return { type: 'dns', value: n };
  }
}

/** Issues a certificate with a fresh P-256 key. */
export async function issueCertificate(opts: IssueOptions): Promise<KeyPairPem> {
  try {
    const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
    const subjectKeyId = await SubjectKeyIdentifierExtension.create(keys.publicKey);
    const subject = nameOf(opts.commonName);
    let issuerName = subject;
    let signingKey = keys.privateKey;
    let authorityKeyId = subjectKeyId.keyId;
    if (opts.issuer) {
      const issuerCert = new PeculiarCertificate(opts.issuer.certPem);
      issuerName = issuerCert.subjectName;
      signingKey = await webcrypto.subtle.importKey('pkcs8', PemConverter.decodeFirst(opts.issuer.keyPem), KEY_ALGORITHM, false, ['sign']);
      // RFC 5280 4.2.1.1: the issuer's own subjectKeyIdentifier, else one derived from its public key.
      const issuerKeyId = issuerCert.getExtension(SubjectKeyIdentifierExtension);
      authorityKeyId = issuerKeyId ? issuerKeyId.keyId : (await SubjectKeyIdentifierExtension.create(issuerCert.publicKey)).keyId;
    }
    const extensions: Extension[] = [
      new BasicConstraintsExtension(opts.isCa, undefined, true),
      new KeyUsagesExtension(
        opts.isCa ? KeyUsageFlags.digitalSignature | KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign : KeyUsageFlags.digitalSignature,
        true,
      ),
      subjectKeyId,
      new AuthorityKeyIdentifierExtension(authorityKeyId),
    ];
    if (!opts.isCa) extensions.push(new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth]));
    if (opts.altNames && opts.altNames.length > 0) extensions.push(new SubjectAlternativeNameExtension(opts.altNames.map(generalName)));
    // No serialNumber: the library draws 16 random bytes and encodes them as a positive INTEGER.
    const cert = await X509CertificateGenerator.create({
      subject,
      issuer: issuerName,
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      publicKey: keys.publicKey,
      signingKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions,
    });
    return {
      certPem: pem(cert.rawData, 'CERTIFICATE'),
      keyPem: pem(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'),
    };
  } catch (err) {
    throw new Error(`failed to issue certificate for ${opts.commonName}`, { cause: err });
  }
}

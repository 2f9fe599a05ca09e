/**
 * Minimal X.509 v3 issuance with node:crypto: ECDSA P-256 keys, SHA-256 signatures, DER written by hand.
 * Node can parse and verify certificates (X509Certificate) but cannot issue them; this is the small,
 * fixed subset a webhook needs: a self-signed CA and serving certificates with DNS/IP SANs.
 * Every certificate produced is checked by the tests with X509Certificate and a real TLS handshake.
 */
import { X509Certificate, createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { isIP } from 'node:net';

const tlv = (tag: number, content: Buffer): Buffer => Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const octets = (b: Buffer) => tlv(0x04, b);
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
const explicit = (n: number, inner: Buffer) => tlv(0xa0 | n, inner);

function integer(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  let b = bytes.subarray(i);
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function bitString(bytes: Buffer, unusedBits = 0): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

function time(d: Date): Buffer {
  const iso = d.toISOString();
  const compact = iso.slice(0, 19).replace(/[-:T]/g, '') + 'Z';
  // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(compact.slice(2), 'ascii')) : tlv(0x18, Buffer.from(compact, 'ascii'));
}

const name = (cn: string) => seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn, 'utf8')))));

const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

function keyId(spki: Buffer): Buffer {
  return createHash('sha1').update(spki).digest();
}

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

function toPem(label: string, der: Buffer): string {
  const b64 = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** Issues a certificate with a fresh P-256 key. */
export function issueCertificate(opts: IssueOptions): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  let signer: KeyObject = privateKey;
  let issuerName = name(opts.commonName);
  let authorityKeyId = keyId(spki);
  if (opts.issuer) {
    const issuerCert = new X509Certificate(opts.issuer.certPem);
    signer = createPrivateKey(opts.issuer.keyPem);
    issuerName = name(commonNameOf(issuerCert));
    authorityKeyId = keyId(issuerCert.publicKey.export({ type: 'spki', format: 'der' }));
  }
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const exts: Buffer[] = [
    extension('2.5.29.19', true, opts.isCa ? seq(bool(true)) : seq()),
    // keyUsage: CA digitalSignature|keyCertSign|cRLSign (0x86, 1 unused bit); leaf digitalSignature (0x80, 7).
    extension('2.5.29.15', true, opts.isCa ? bitString(Buffer.from([0x86]), 1) : bitString(Buffer.from([0x80]), 7)),
    extension('2.5.29.14', false, octets(keyId(spki))),
    extension('2.5.29.35', false, seq(tlv(0x80, authorityKeyId))),
  ];
  if (!opts.isCa) exts.push(extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'))));
  if (opts.altNames && opts.altNames.length > 0) {
    const names = opts.altNames.map((n) => {
      const v = isIP(n);
      if (v === 4) return tlv(0x87, Buffer.from(n.split('.').map(Number)));
      if (v === 6) throw new Error(`failed to issue certificate: IPv6 SANs are not supported (${n})`);
      return tlv(0x82, Buffer.from(n, 'ascii'));
    });
    exts.push(extension('2.5.29.17', false, seq(...names)));
  }
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    ECDSA_SHA256,
    issuerName,
    seq(time(opts.notBefore), time(opts.notAfter)),
    name(opts.commonName),
    spki,
    explicit(3, seq(...exts)),
  );
  const signature = sign('sha256', tbs, signer);
  const cert = seq(tbs, ECDSA_SHA256, bitString(signature));
  return {
    certPem: toPem('CERTIFICATE', cert),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

export function commonNameOf(cert: X509Certificate): string {
  const m = /CN=([^\n]+)/.exec(cert.subject);
  return m ? m[1]! : '';
}

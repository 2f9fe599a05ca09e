import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { memoryLogger } from '../../common/log.ts';
import { handleMutatePods } from './admission.ts';
import type { HandlerResult } from './admission.ts';
import type { TLSSocket } from 'node:tls';
import { admissionPolicyFor, mutatePod } from './mutate-pod.ts';
import { WebhookServer, MAX_BODY_BYTES } from './server.ts';
import { issueCertificate } from './x509.ts';

const now = Date.now();
const ca = await issueCertificate({
  commonName: 'ca',
  notBefore: new Date(now - 60_000),
  notAfter: new Date(now + 86_400_000),
  isCa: true,
});
const leaf = () =>
  issueCertificate({
    commonName: 'emuv-webhook.emuv-system.svc',
    altNames: ['emuv-webhook.emuv-system.svc'],
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
    isCa: false,
    issuer: ca,
  });

interface Reply {
  status: number;
  body: string;
  fingerprint: string;
}

function call(addr: AddressInfo, method: string, path: string, body?: Buffer | string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: addr.port,
        method,
        path,
        servername: 'emuv-webhook.emuv-system.svc',
        ca: ca.certPem,
        agent: false,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            body: Buffer.concat(chunks).toString(),
            fingerprint: (res.socket as TLSSocket).getPeerCertificate().fingerprint256,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

let server: WebhookServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function start(handle?: (b: Buffer) => HandlerResult | Promise<HandlerResult>, ready = () => true) {
  const observed: string[] = [];
  const tls = await leaf();
  const logger = memoryLogger();
  server = new WebhookServer({
    tls,
    ready,
    logger,
    handle: handle ?? ((b) => handleMutatePods(b, { forNamespace: (ns) => admissionPolicyFor([], ns, undefined) }, mutatePod)),
    metrics: { observe: (r) => observed.push(r) },
  });
  const addr = await server.start(0, '127.0.0.1');
  return { addr, observed, tls, logger };
}

describe('WebhookServer', () => {
  it('serves /mutate-pods over TLS with a JSON Patch response', async () => {
    const { addr, observed } = await start();
    const body = readFileSync(new URL('../../test/fixtures/admission/pod-create-emuv.json', import.meta.url));
    const r = await call(addr, 'POST', '/mutate-pods', body);
    expect(r.status).toBe(200);
    const review = JSON.parse(r.body);
    expect(review).toMatchObject({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { allowed: true, patchType: 'JSONPatch' },
    });
    expect(observed).toEqual(['allowed']);
  });

  it('answers health, readiness, unknown paths and methods', async () => {
    let isReady = false;
    const { addr } = await start(undefined, () => isReady);
    expect((await call(addr, 'GET', '/healthz')).status).toBe(200);
    expect((await call(addr, 'GET', '/readyz')).status).toBe(503);
    isReady = true;
    expect((await call(addr, 'GET', '/readyz')).status).toBe(200);
    expect((await call(addr, 'GET', '/nope')).status).toBe(404);
    expect((await call(addr, 'GET', '/mutate-pods')).status).toBe(405);
  });

  it('400 for garbage, 413 for oversized bodies, 500 when the handler throws', async () => {
    let boom = false;
    const { addr, observed, logger } = await start((b) => {
      if (boom) throw new Error('bug', { cause: new Error('root cause') });
      return handleMutatePods(b, { forNamespace: (ns) => admissionPolicyFor([], ns, undefined) }, mutatePod);
    });
    expect((await call(addr, 'POST', '/mutate-pods', '{not json')).status).toBe(400);
    const big = await call(addr, 'POST', '/mutate-pods', Buffer.alloc(MAX_BODY_BYTES + 1, 0x20)).catch((e) => ({
      status: 413,
      body: String(e),
      fingerprint: '',
    }));
    expect(big.status).toBe(413);
    boom = true;
    expect((await call(addr, 'POST', '/mutate-pods', '{}')).status).toBe(500);
    expect(observed).toEqual(['bad_request', 'bad_request', 'error']);
    expect(logger.entries.filter((e) => e.level === 'error')).toEqual([
      { level: 'error', msg: 'admission handler failed', fields: { err: 'bug', causes: ['root cause'] } },
    ]);
  });

  it('awaits an asynchronous handler (the DRA path creates claim templates first); a rejection is a 500', async () => {
    let fail = false;
    const { addr, observed, logger } = await start(async (b) => {
      await new Promise((r) => setTimeout(r, 20));
      if (fail) throw new Error('async bug');
      return handleMutatePods(b, { forNamespace: (ns) => admissionPolicyFor([], ns, undefined) }, mutatePod);
    });
    const body = readFileSync(new URL('../../test/fixtures/admission/pod-create-emuv.json', import.meta.url));
    const ok = await call(addr, 'POST', '/mutate-pods', body);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).response).toMatchObject({ allowed: true, patchType: 'JSONPatch' });
    fail = true;
    expect((await call(addr, 'POST', '/mutate-pods', body)).status).toBe(500);
    expect(observed).toEqual(['allowed', 'error']);
    expect(logger.entries.filter((e) => e.level === 'error').map((e) => e.fields)).toEqual([{ err: 'async bug' }]);
  });

  it('hot-swaps the certificate for new connections', async () => {
    const { addr, tls } = await start();
    const before = await call(addr, 'GET', '/healthz');
    const next = await leaf();
    server!.updateCertificate(next);
    const after = await call(addr, 'GET', '/healthz');
    expect(after.status).toBe(200);
    expect(after.fingerprint).not.toBe(before.fingerprint);
    expect(tls.certPem).not.toBe(next.certPem);
  });
});

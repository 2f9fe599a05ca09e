/**
 * Webhook benchmark (target, docs/benchmarks.md: p99 <= 10 ms at 200 admissions/s). An in-process HTTPS
 * WebhookServer with self-issued certificates; requests are sent open-loop at a fixed rate over
 * keep-alive connections (as the apiserver does), each one the pod-create fixture with emuv asks.
 * Baseline in the same run: the same server with a no-op handler (allowed, no patch), so TLS, HTTP and
 * the client's own cost are measured apart from the mutation; the two alternate in 2-second blocks so
 * both see the same background load. 20 policies are in the view.
 * Writes bench/results/webhook.json. Usage: npm exec -- node bench/webhook.ts [BENCH_SECONDS=10 BENCH_RATE=200]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { cpus, loadavg, totalmem } from 'node:os';
import { nopLogger } from '../common/log.ts';
import { handleMutatePods, reviewResponse } from '../operator/webhook/admission.ts';
import type { HandlerResult } from '../operator/webhook/admission.ts';
import { mutatePod } from '../operator/webhook/mutate-pod.ts';
import { CachedPolicySource } from '../operator/webhook/policy-source.ts';
import { WebhookServer } from '../operator/webhook/server.ts';
import { issueCertificate } from '../operator/webhook/x509.ts';
import { policy } from '../test/fakes/operator-objects.ts';
import { summarize } from './lib.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const RATE = Number(process.env.BENCH_RATE ?? 200);
const HOST = 'emuv-webhook.emuv-system.svc';

const now = Date.now();
const ca = await issueCertificate({
  commonName: 'bench-ca',
  notBefore: new Date(now - 60_000),
  notAfter: new Date(now + 86_400_000),
  isCa: true,
});
const tls = await issueCertificate({
  commonName: HOST,
  altNames: [HOST],
  notBefore: new Date(now - 60_000),
  notAfter: new Date(now + 86_400_000),
  isCa: false,
  issuer: ca,
});
const body = readFileSync(new URL('../test/fixtures/admission/pod-create-emuv.json', import.meta.url));

const policies = Array.from({ length: 20 }, (_, i) =>
  policy(`p${i}`, {
    priority: i,
    nodeSelector: { matchLabels: { pool: `pool-${i}` } },
    namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'In', values: ['ml', `t${i}`] }] },
    maxPerContainer: `${32 + i}Gi`,
  }),
);
const source = new CachedPolicySource({
  policies: { get: () => undefined, list: () => policies },
  namespaces: { get: (n) => ({ metadata: { name: n, labels: { team: 'ml' } } }), list: () => [] },
});

interface Target {
  name: string;
  server: WebhookServer;
  port: number;
  agent: Agent;
  server_ms: number[];
  client_ms: number[];
}

async function target(name: string, handle: (b: Buffer) => HandlerResult): Promise<Target> {
  const t: Partial<Target> = { name, server_ms: [], client_ms: [] };
  const server = new WebhookServer({ tls, handle, logger: nopLogger, metrics: { observe: (_r, s) => t.server_ms!.push(s * 1000) } });
  const { port } = await server.start(0, '127.0.0.1');
  return { ...(t as Target), server, port, agent: new Agent({ keepAlive: true, maxSockets: 16, ca: ca.certPem, servername: HOST }) };
}

function once(t: Target): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = request(
      {
        host: '127.0.0.1',
        port: t.port,
        method: 'POST',
        path: '/mutate-pods',
        agent: t.agent,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        res.on('data', () => {});
        res.on('end', () =>
          res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(`HTTP ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Open loop for `seconds` at RATE: request i is sent at start + i/RATE whether or not earlier ones finished. */
async function block(t: Target, seconds: number): Promise<number> {
  const total = Math.round(seconds * RATE);
  const intervalNs = 1e9 / RATE;
  const start = process.hrtime.bigint();
  const pending: Promise<number>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + BigInt(Math.round(i * intervalNs));
    const wait = Number(due - process.hrtime.bigint()) / 1e6;
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(once(t));
  }
  t.client_ms.push(...(await Promise.all(pending)));
  return total / (Number(process.hrtime.bigint() - start) / 1e9);
}

const noop = (b: Buffer): HandlerResult => {
  const uid = /"uid":\s*"([^"]+)"/.exec(b.toString())?.[1] ?? '';
  return { status: 200, body: reviewResponse(uid, { allowed: true, patch: [], warnings: [] }) };
};

const targets = [await target('noop-handler', noop), await target('emuv-mutate-pods', (b) => handleMutatePods(b, source, mutatePod))];
for (const t of targets) for (let i = 0; i < 200; i++) await once(t); // warm-up: JIT, TLS sessions, sockets
for (const t of targets) {
  t.client_ms.length = 0;
  t.server_ms.length = 0;
}
// Alternate 2-second blocks so both handlers see the same background load on a shared machine.
const ROUNDS = Math.max(1, Math.round(SECONDS / 2));
const rates: Record<string, number[]> = {};
for (let r = 0; r < ROUNDS; r++) {
  for (const t of targets) (rates[t.name] ??= []).push(await block(t, SECONDS / ROUNDS));
}
const summary = (t: Target) => ({
  name: t.name,
  achievedRate: Math.round(Math.min(...rates[t.name]!)),
  clientRoundTrip: summarize(t.client_ms),
  serverHandling: summarize(t.server_ms),
});
const [baseline, emuv] = targets.map(summary);
for (const t of targets) {
  t.agent.destroy();
  await t.server.stop();
}
const result = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model,
  memGiB: Math.round(totalmem() / 2 ** 30),
  loadAverage1m: loadavg()[0],
  ratePerSecond: RATE,
  seconds: SECONDS,
  policies: policies.length,
  target: { p99Ms: 10 },
  baseline,
  emuv,
  rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
  note: 'client and server share one process and event loop; clientRoundTrip includes the client cost, serverHandling is body-received to response-written',
};
mkdirSync(new URL('results/', import.meta.url), { recursive: true });
writeFileSync(new URL('results/webhook.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);

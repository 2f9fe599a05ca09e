// Issue 5, "done when", on the harness cluster with the agent and the operator running as host processes:
// create an EmuvPolicy, create a pod asking for emuv.io/vram-virtual: 28Gi, and watch it scheduled by
// bytes, mutated by the webhook, allocated by the device plugin and running with its limit in its
// environment. A second 28Gi pod no longer fits the node's bytes and stays Pending.
//
// The apiserver reaches the webhook on the host side of the cluster's veth (clientConfig.url), with a
// serving certificate for that address (--cert-mode=provided); everything else is as deployed.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { ENV } from '../../common/contracts/interposer.ts';
import { issueCertificate } from '../../operator/webhook/x509.ts';
import { clearNodeResource, GiB, startAgent, type RunningAgent } from './agent.ts';
import { HOST_IP, Kube, KubeError, loadCluster, waitFor, type Json } from './harness.ts';
import { parseProbeLog, probePod } from './pods.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const NS = 'emuv-e2e';
const OPERATOR_NS = 'emuv-system';
const WEBHOOK_PORT = 19443;
const POLICY = 'e2e-workstations';
const VRAM_VIRTUAL = 'emuv.io/vram-virtual';
/** Fixture GPU: 8Gi VRAM - 512Mi reserve = 7.5Gi usable; the policy lends 24Gi of host RAM: 31.5Gi. */
const EXPECTED_VIRTUAL = 7.5 * GiB + 24 * GiB;

const ignore = (status: number) => (e: unknown) => {
  if (!(e instanceof KubeError && e.status === status)) throw e;
};

describe('operator end to end: policy -> EmuvNode -> capacity; pod -> webhook -> scheduler -> Allocate', () => {
  const info = loadCluster();
  const kube = new Kube(info);
  const dir = path.join(info.paths.runDir, 'operator-e2e');
  let operator: ChildProcess | undefined;
  let agent: RunningAgent | undefined;

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    // CRDs, as generated from operator/api/schema.ts.
    for (const file of ['emuv.io_emuvpolicies.yaml', 'emuv.io_emuvnodes.yaml']) {
      const crd = parse(readFileSync(path.join(repoRoot, 'deploy/crds', file), 'utf8'));
      await kube.json('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd).catch(ignore(409));
      await waitFor(`CRD ${crd.metadata.name} established`, 60_000, async () => {
        const c = await kube.get(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
        return c.status?.conditions?.some((x: Json) => x.type === 'Established' && x.status === 'True') ? true : undefined;
      });
    }
    await kube.ensureNamespace(OPERATOR_NS);
    await kube.ensureNamespace(NS);

    // Serving certificate for the address the apiserver dials, and the webhook configuration pointing there.
    const now = Date.now();
    const ca = await issueCertificate({
      commonName: 'emuv-e2e-ca',
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 86_400_000),
      isCa: true,
    });
    const leaf = await issueCertificate({
      commonName: HOST_IP,
      altNames: [HOST_IP],
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 86_400_000),
      isCa: false,
      issuer: ca,
    });
    writeFileSync(path.join(dir, 'tls.crt'), leaf.certPem);
    writeFileSync(path.join(dir, 'tls.key'), leaf.keyPem, { mode: 0o600 });
    const mwc = parseAllDocuments(readFileSync(path.join(repoRoot, 'deploy/webhook/mutatingwebhookconfiguration.yaml'), 'utf8'))[0]!.toJS();
    mwc.webhooks[0].clientConfig = {
      url: `https://${HOST_IP}:${WEBHOOK_PORT}/mutate-pods`,
      caBundle: Buffer.from(ca.certPem).toString('base64'),
    };
    await kube
      .json('DELETE', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${mwc.metadata.name}`)
      .catch(ignore(404));
    await kube.json('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', mwc);

    // The operator (controller + webhook) and the agent (node status on: it reads its EmuvNode).
    const log = openSync(path.join(info.paths.logDir, 'operator-e2e.log'), 'a');
    const node = path.join(repoRoot, 'node_modules/.bin/node');
    operator = spawn(
      node,
      [
        path.join(repoRoot, 'operator/main.ts'),
        `--kubeconfig=${info.kubeconfig}`,
        `--namespace=${OPERATOR_NS}`,
        `--webhook-port=${WEBHOOK_PORT}`,
        '--metrics-port=0',
        '--cert-mode=provided',
        `--tls-cert-file=${path.join(dir, 'tls.crt')}`,
        `--tls-key-file=${path.join(dir, 'tls.key')}`,
        '--log-level=debug',
      ],
      { stdio: ['ignore', log, log], cwd: repoRoot },
    );
    closeSync(log);
    agent = startAgent(info, 'operator-e2e');
  });

  afterAll(async () => {
    await kube.deleteNamespace(NS).catch(() => undefined);
    await kube.json('DELETE', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/emuv').catch(() => undefined);
    await kube.json('DELETE', `/apis/emuv.io/v1alpha1/emuvpolicies/${POLICY}`).catch(() => undefined);
    operator?.kill('SIGTERM');
    await agent?.stop();
    await kube.json('DELETE', `/apis/emuv.io/v1alpha1/emuvnodes/${info.nodeName}`).catch(() => undefined);
    await clearNodeResource(kube, VRAM_VIRTUAL).catch(() => undefined);
    kube.close();
  });

  it('turns a policy into the node EmuvNode spec and the capacity the scheduler sees', async () => {
    await kube.json('POST', '/apis/emuv.io/v1alpha1/emuvpolicies', {
      apiVersion: 'emuv.io/v1alpha1',
      kind: 'EmuvPolicy',
      metadata: { name: POLICY },
      spec: { priority: 10, hostSpillBudget: '24Gi', slotsPerGpu: 8, podMemory: { mode: 'None' } },
    });
    const en = await waitFor(`EmuvNode ${info.nodeName} with the policy's spec`, 90_000, async () => {
      const o = await kube.get(`/apis/emuv.io/v1alpha1/emuvnodes/${info.nodeName}`).catch(() => undefined);
      return o?.spec?.slotsPerGpu === 8 && o?.spec?.policy === POLICY ? o : undefined;
    });
    expect(en.spec).toMatchObject({ hostSpillBudget: '24Gi', slotsPerGpu: 8, vramMode: 'Fill' });
    const n = await waitFor('node allocatable from the policy', 90_000, async () => {
      const node = await kube.node();
      const a = node.status?.allocatable ?? {};
      return a[VRAM_VIRTUAL] === String(EXPECTED_VIRTUAL) && a['emuv.io/vgpu'] === '8' ? node : undefined;
    });
    expect(n.status.capacity[VRAM_VIRTUAL]).toBe(String(EXPECTED_VIRTUAL));
    const status = await waitFor('EmuvNode status from the agent', 30_000, async () => {
      const o = await kube.get(`/apis/emuv.io/v1alpha1/emuvnodes/${info.nodeName}`);
      return o.status?.capacity?.virtual === String(EXPECTED_VIRTUAL) ? o.status : undefined;
    });
    expect(status.conditions.find((c: Json) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'SpecApplied' });
  });

  it('runs a 28Gi pod: mutated, scheduled by bytes, allocated, with its limit in the environment', async () => {
    const stored = await kube.createPod(NS, probePod({ name: 'llm-0', limits: { [VRAM_VIRTUAL]: '28Gi' } }));
    const c = stored.spec.containers[0];
    expect(c.resources.limits['emuv.io/vgpu']).toBe('1');
    expect(c.resources.requests['emuv.io/vgpu']).toBe('1');
    expect(c.env).toContainEqual({ name: ENV.limitBytes, value: String(28 * GiB) });
    expect(stored.metadata.annotations['emuv.io/admitted']).toBe('v1');

    const running = await kube.waitPodPhase(NS, 'llm-0', 'Running', 120_000);
    expect(running.spec.nodeName).toBe(info.nodeName);
    const probe = parseProbeLog(
      await waitFor('probe log of llm-0', 30_000, async () => {
        const t = await kube.podLog(NS, 'llm-0');
        return parseProbeLog(t).complete ? t : undefined;
      }),
    );
    expect(probe.env.get(ENV.limitBytes)).toBe(String(28 * GiB)); // from the webhook
    expect(probe.env.get(ENV.vramShare)).toBe(String(7.5 * GiB)); // from Allocate (fill mode: the card)
    expect(probe.env.get(ENV.gpu)).toBeTruthy();
  });

  it('keeps a second 28Gi pod Pending: the node has 3.5Gi of virtual memory left', async () => {
    await kube.createPod(NS, probePod({ name: 'llm-1', limits: { [VRAM_VIRTUAL]: '28Gi' } }));
    const msg = await waitFor('llm-1 unschedulable', 60_000, async () => {
      const p = await kube.pod(NS, 'llm-1');
      const cond = (p.status?.conditions ?? []).find((x: Json) => x.type === 'PodScheduled');
      return cond?.status === 'False' ? String(cond.message) : undefined;
    });
    expect(msg).toContain(`Insufficient ${VRAM_VIRTUAL}`);
  });

  it('denies a pod that asks for more than a policy allows, with a message a person can act on', async () => {
    await kube.json(
      'PATCH',
      `/apis/emuv.io/v1alpha1/emuvpolicies/${POLICY}`,
      { spec: { maxPerContainer: '16Gi' } },
      'application/merge-patch+json',
    );
    const err = await waitFor('the webhook to see the new maximum', 30_000, async () => {
      try {
        await kube.createPod(NS, probePod({ name: `too-big-${Date.now()}`, limits: { [VRAM_VIRTUAL]: '20Gi' } }));
        return undefined;
      } catch (e) {
        if (e instanceof KubeError) return e;
        throw e;
      }
    });
    expect(err.status).toBe(403);
    expect(err.message).toContain('16Gi');
  });
});

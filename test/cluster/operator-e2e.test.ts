// On the local cluster with the agent and the operator running as host processes:
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
import { issueCertificate, type KeyPairPem } from '../../operator/webhook/x509.ts';
import { connect as tlsConnect } from 'node:tls';
import { clearNodeResource, GiB, startAgent, type RunningAgent } from './agent.ts';
import { HOST_IP, Kube, KubeError, loadCluster, NODE_BIN, REPO_ROOT, waitFor, type Json } from '../../localcluster/index.ts';
import { parseProbeLog, probePod } from './pods.ts';

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
  let caPair: KeyPairPem;
  /** Names of the ValidatingAdmissionPolicy and binding this file installed (removed after it). */
  let vapInstalled: string[] = [];

  const startOperator = (): ChildProcess => {
    const log = openSync(path.join(info.paths.logDir, 'operator-e2e.log'), 'a');
    const child = spawn(
      NODE_BIN,
      [
        path.join(REPO_ROOT, 'operator/main.ts'),
        `--kubeconfig=${info.kubeconfig}`,
        `--namespace=${OPERATOR_NS}`,
        `--webhook-port=${WEBHOOK_PORT}`,
        '--metrics-port=0',
        '--cert-mode=provided',
        `--tls-cert-file=${path.join(dir, 'tls.crt')}`,
        `--tls-key-file=${path.join(dir, 'tls.key')}`,
        '--cert-check-interval=1s',
        '--log-level=debug',
      ],
      { stdio: ['ignore', log, log], cwd: REPO_ROOT },
    );
    closeSync(log);
    return child;
  };

  const stopOperator = async () => {
    const child = operator;
    operator = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  };

  /** The serial number of the certificate the webhook presents now. */
  const servedSerial = () =>
    new Promise<string>((resolve, reject) => {
      const sock = tlsConnect({ host: HOST_IP, port: WEBHOOK_PORT, ca: caPair.certPem, servername: undefined }, () => {
        resolve(sock.getPeerX509Certificate()!.serialNumber);
        sock.end();
      });
      sock.on('error', reject);
    });

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    // CRDs, as generated from operator/api/schema.ts.
    for (const file of ['emuv.io_emuvpolicies.yaml', 'emuv.io_emuvnodes.yaml']) {
      const crd = parse(readFileSync(path.join(REPO_ROOT, 'deploy/crds', file), 'utf8'));
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
    const mwc = parseAllDocuments(
      readFileSync(path.join(REPO_ROOT, 'deploy/webhook/mutatingwebhookconfiguration.yaml'), 'utf8'),
    )[0]!.toJS();
    mwc.webhooks[0].clientConfig = {
      url: `https://${HOST_IP}:${WEBHOOK_PORT}/mutate-pods`,
      caBundle: Buffer.from(ca.certPem).toString('base64'),
    };
    await kube
      .json('DELETE', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${mwc.metadata.name}`)
      .catch(ignore(404));
    await kube.json('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', mwc);

    // The operator (controller + webhook) and the agent (node status on: it reads its EmuvNode).
    caPair = ca;
    operator = startOperator();
    agent = startAgent(info, 'operator-e2e');
  });

  afterAll(async () => {
    await kube.deleteNamespace(NS).catch(() => undefined);
    await kube.json('DELETE', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/emuv').catch(() => undefined);
    await kube.json('DELETE', `/apis/emuv.io/v1alpha1/emuvpolicies/${POLICY}`).catch(() => undefined);
    const [vap, vapBinding] = vapInstalled;
    if (vapBinding)
      await kube
        .json('DELETE', `/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/${vapBinding}`)
        .catch(() => undefined);
    if (vap) await kube.json('DELETE', `/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/${vap}`).catch(() => undefined);
    await stopOperator();
    await agent?.stop();
    await kube.json('DELETE', `/apis/emuv.io/v1alpha1/emuvnodes/${info.nodeName}`).catch(() => undefined);
    await clearNodeResource(kube, VRAM_VIRTUAL).catch(() => undefined);
    kube.close();
  });

  it('the CRDs refuse nonsensical policies with messages a person understands', async () => {
    const bad = (spec: Record<string, unknown>) =>
      kube
        .json('POST', '/apis/emuv.io/v1alpha1/emuvpolicies', {
          apiVersion: 'emuv.io/v1alpha1',
          kind: 'EmuvPolicy',
          metadata: { name: 'bad' },
          spec,
        })
        .then(
          () => {
            throw new Error('accepted');
          },
          (e: unknown) => e as KubeError,
        );
    const spill = await bad({ hostSpillBudget: '95%' });
    expect(spill.status).toBe(422);
    expect(spill.body).toContain('hostSpillBudget may be at most 90% of node memory');
    const size = await bad({ vramReservePerGpu: '1.5Gi' });
    expect(size.status).toBe(422);
    expect(size.body).toContain('fractions (7.5Gi) are not accepted');
    const slots = await bad({ slotsPerGpu: 0 });
    expect(slots.status).toBe(422);
    expect(slots.body).toContain('slotsPerGpu');
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

  it('denies namespaces no policy lets ask', async () => {
    await kube.json(
      'PATCH',
      `/apis/emuv.io/v1alpha1/emuvpolicies/${POLICY}`,
      { spec: { namespaceSelector: { matchLabels: { 'emuv.io/allowed': 'yes' } } } },
      'application/merge-patch+json',
    );
    const err = await waitFor('the webhook to see the namespace selector', 30_000, async () => {
      try {
        await kube.createPod(NS, probePod({ name: `forbidden-${Date.now()}`, limits: { [VRAM_VIRTUAL]: '1Gi' } }));
        return undefined;
      } catch (e) {
        if (e instanceof KubeError) return e;
        throw e;
      }
    });
    expect(err.status).toBe(403);
    expect(err.body).toContain(`namespace \\"${NS}\\" may not ask for ${VRAM_VIRTUAL}`);
    await kube.json(
      'PATCH',
      `/apis/emuv.io/v1alpha1/emuvpolicies/${POLICY}`,
      { spec: { namespaceSelector: null, maxPerContainer: null } },
      'application/merge-patch+json',
    );
  });

  it('keeps admitting through a certificate rotation', async () => {
    const before = await servedSerial();
    const now = Date.now();
    const next = await issueCertificate({
      commonName: HOST_IP,
      altNames: [HOST_IP],
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 86_400_000),
      isCa: false,
      issuer: caPair,
    });
    writeFileSync(path.join(dir, 'tls.key'), next.keyPem, { mode: 0o600 });
    writeFileSync(path.join(dir, 'tls.crt'), next.certPem);
    await waitFor('the webhook to serve the new certificate', 30_000, async () => ((await servedSerial()) !== before ? true : undefined));
    const pod = await waitFor('an admission after the rotation', 30_000, async () =>
      kube.createPod(NS, probePod({ name: `after-rotation-${Date.now()}`, limits: { [VRAM_VIRTUAL]: '1Gi' } })).catch(() => undefined),
    );
    expect(pod.spec.containers[0].env).toContainEqual({ name: ENV.limitBytes, value: String(GiB) });
  });

  it('with the webhook down refuses emuv pods and leaves every other pod alone', async () => {
    await stopOperator();
    const err = await kube.createPod(NS, probePod({ name: 'while-down', limits: { [VRAM_VIRTUAL]: '1Gi' } })).then(
      () => undefined,
      (e: unknown) => e as KubeError,
    );
    expect(err?.status).toBe(500);
    expect(err?.body).toContain('failed calling webhook');
    const plain = await kube.createPod(NS, probePod({ name: 'plain-while-down' }));
    expect(plain.metadata.name).toBe('plain-while-down');
    operator = startOperator();
  });

  it('refuses, with the admission policy, a pod that asks for emuv.io/vgpu directly', async () => {
    // The first policy of deploy/webhook/validatingadmissionpolicies.yaml and its binding (the agent's
    // own-node policy needs node-bound service-account tokens, which the host-process agent does not use).
    const docs = parseAllDocuments(readFileSync(path.join(REPO_ROOT, 'deploy/webhook/validatingadmissionpolicies.yaml'), 'utf8')).map((d) =>
      d.toJS(),
    );
    const policy = docs.find((d) => d.kind === 'ValidatingAdmissionPolicy' && d.metadata.name === 'emuv-vgpu-only-via-webhook');
    const binding = docs.find((d) => d.kind === 'ValidatingAdmissionPolicyBinding' && d.spec.policyName === 'emuv-vgpu-only-via-webhook');
    await kube.json('POST', '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies', policy).catch(ignore(409));
    await kube.json('POST', '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings', binding).catch(ignore(409));
    vapInstalled = [policy.metadata.name, binding.metadata.name];
    const err = await waitFor('the admission policy to be in force', 60_000, async () => {
      try {
        await kube.createPod(NS, probePod({ name: `direct-${Date.now()}`, limits: { 'emuv.io/vgpu': '1' } }));
        return undefined;
      } catch (e) {
        if (e instanceof KubeError) return e;
        throw e;
      }
    });
    expect(err.status).toBe(403); // the policy's reason is Forbidden
    expect(err.body).toContain('emuv.io/vgpu is added by emuv: ask for emuv.io/vram-virtual only');
    // A pod the webhook admitted passes it.
    await waitFor('the operator back up', 30_000, async () => ((await servedSerial().catch(() => undefined)) ? true : undefined));
    const ok = await kube.createPod(NS, probePod({ name: 'admitted-under-policy', limits: { [VRAM_VIRTUAL]: '1Gi' } }));
    expect(ok.spec.containers[0].resources.limits['emuv.io/vgpu']).toBe('1');
  });
});

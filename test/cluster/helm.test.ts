// The real Helm CLI (built from helm.sh/helm by build.sh).
// - Every chart in the repository (helm/*/Chart.yaml; helm/emuv once it exists) must pass
//   `helm lint --strict` and render with `helm template`.
// - A throwaway chart written here proves the CLI itself: lint --strict passes on a good chart and fails on
//   a broken one, template renders values, and install/uninstall work against the real test cluster.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { helm as helmOn, Kube, KubeError, loadCluster, readVersions, REPO_ROOT, waitFor, type Json } from '../../localcluster/index.ts';

const info = loadCluster();
const helmHome = mkdtempSync(path.join(os.tmpdir(), 'emuv-helm-home-'));
/** The pinned helm against the cluster, with a helm home of this file's own. */
const helm = (args: string[]) => helmOn(info, args, helmHome);

function writeChart(dir: string, template: string) {
  mkdirSync(path.join(dir, 'templates'), { recursive: true });
  writeFileSync(
    path.join(dir, 'Chart.yaml'),
    'apiVersion: v2\nname: emuv-helm-probe\ndescription: throwaway chart of the emuv cluster tests\nversion: 0.1.0\nappVersion: "0.1.0"\nicon: https://example.invalid/icon.png\n',
  );
  writeFileSync(path.join(dir, 'values.yaml'), 'greeting: hello\nslots: 4\n');
  writeFileSync(path.join(dir, 'templates', 'configmap.yaml'), template);
}

const GOOD = `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-probe
  labels:
    app.kubernetes.io/managed-by: {{ .Release.Service }}
data:
  greeting: {{ .Values.greeting | quote }}
  slots: {{ .Values.slots | quote }}
`;

const charts = existsSync(path.join(REPO_ROOT, 'helm'))
  ? readdirSync(path.join(REPO_ROOT, 'helm'))
      .filter((d) => existsSync(path.join(REPO_ROOT, 'helm', d, 'Chart.yaml')))
      .map((d) => path.join('helm', d))
  : [];

describe('helm CLI', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'emuv-helm-'));
  const kube = new Kube(info);
  afterAll(() => {
    kube.close();
    rmSync(tmp, { recursive: true, force: true });
    rmSync(helmHome, { recursive: true, force: true });
  });

  it('is the pinned version', () => {
    const r = helm(['version', '--short']);
    expect(r.status).toBe(0);
    expect(r.out.trim().split('+')[0]).toBe(readVersions().HELM_VERSION);
  });

  it('lint --strict passes on a good chart and fails on a template with a missing value', () => {
    const good = path.join(tmp, 'good');
    writeChart(good, GOOD);
    const ok = helm(['lint', '--strict', good]);
    expect(ok.out).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(ok.status).toBe(0);

    const bad = path.join(tmp, 'bad');
    writeChart(bad, GOOD.replace('.Values.greeting', '.Values.nothing.here'));
    const fail = helm(['lint', '--strict', bad]);
    expect(fail.status).not.toBe(0);
    expect(fail.out).toContain('1 chart(s) failed');
  });

  it('template renders values and --set overrides', () => {
    const dir = path.join(tmp, 'render');
    writeChart(dir, GOOD);
    const r = helm(['template', 'demo', dir, '--set', 'slots=8']);
    expect(r.status).toBe(0);
    const docs = YAML.parseAllDocuments(r.stdout).map((d) => d.toJS());
    expect(docs).toHaveLength(1);
    expect(docs[0]).toMatchObject({
      kind: 'ConfigMap',
      metadata: { name: 'demo-probe', labels: { 'app.kubernetes.io/managed-by': 'Helm' } },
      data: { greeting: 'hello', slots: '8' },
    });
  });

  it('installs into and uninstalls from the real cluster', async () => {
    const dir = path.join(tmp, 'install');
    writeChart(dir, GOOD);
    const ns = 'emuv-helm';
    const inst = helm(['install', 'probe', dir, '--namespace', ns, '--create-namespace', '--wait', '--timeout', '60s']);
    expect(inst.status, inst.out).toBe(0);
    const cm = await kube.get(`/api/v1/namespaces/${ns}/configmaps/probe-probe`);
    expect(cm.data).toEqual({ greeting: 'hello', slots: '4' });
    const list = helm(['list', '--namespace', ns, '--output', 'json']);
    expect(JSON.parse(list.stdout)).toMatchObject([{ name: 'probe', status: 'deployed' }]);
    const un = helm(['uninstall', 'probe', '--namespace', ns, '--wait']);
    expect(un.status, un.out).toBe(0);
    await waitFor('configmap to be deleted', 30_000, async () => {
      try {
        await kube.get(`/api/v1/namespaces/${ns}/configmaps/probe-probe`);
        return undefined;
      } catch (e) {
        if (e instanceof KubeError && e.status === 404) return true;
        throw e;
      }
    });
    await kube.deleteNamespace(ns);
  });

  for (const chart of charts) {
    it(`${chart}: helm lint --strict, helm template, and the real apiserver accepts every object (dry run)`, async () => {
      const lint = helm(['lint', '--strict', path.join(REPO_ROOT, chart)]);
      expect(lint.status, lint.out).toBe(0);
      const ns = 'emuv-chart-dryrun';
      await kube.ensureNamespace(ns);
      const tpl = helm([
        'template',
        'emuv',
        path.join(REPO_ROOT, chart),
        '--namespace',
        ns,
        '--include-crds',
        '--kube-version',
        info.kubernetesVersion,
      ]);
      expect(tpl.status, tpl.out).toBe(0);
      const docs = YAML.parseAllDocuments(tpl.stdout)
        .map((d) => d.toJS())
        .filter(Boolean);
      expect(docs.length).toBeGreaterThan(0);
      const chartGroups = new Set(docs.filter((d) => d.kind === 'CustomResourceDefinition').map((d) => d.spec?.group));
      const rejected: string[] = [];
      for (const d of docs) {
        expect(d).toHaveProperty('kind');
        const target = await resourcePath(kube, d.apiVersion, d.kind);
        if (!target) {
          // A custom resource of a CRD this chart brings: the CRD itself is dry-run created below.
          expect(chartGroups.has(String(d.apiVersion).split('/')[0]), `${d.apiVersion} ${d.kind} is served by nothing`).toBe(true);
          continue;
        }
        // Server-side apply, dry run: validates the object whether or not it exists already (another
        // test file may have installed the CRDs).
        // An object that names its namespace goes there, as Helm puts it (the operator's events Role lives
        // in `default`); the others go to the release namespace.
        const objNs = (d.metadata?.namespace as string | undefined) ?? ns;
        const url =
          `${target.base}${target.namespaced ? `/namespaces/${objNs}` : ''}/${target.resource}/${d.metadata.name}` +
          '?dryRun=All&fieldValidation=Strict&fieldManager=emuv-chart-test&force=true';
        await kube
          .json('PATCH', url, d, 'application/apply-patch+yaml')
          .catch((e: unknown) => rejected.push(`${d.kind}/${d.metadata?.name}: ${(e as Error).message}`));
      }
      expect(rejected).toEqual([]);
      await kube.deleteNamespace(ns);
    });
  }
});

describe('deploy/ is the chart rendered', () => {
  // The chart is the source of the webhook configuration, the admission policies and the CRDs; the plain
  // manifests in deploy/ are what it renders for namespace emuv-system (kubectl users, the operator's
  // tests). They must not drift.
  /** `helm template` for namespace emuv-system with `args` (--show-only <template>, or --no-hooks ...). */
  const render = (...args: string[]) => {
    const r = helm([
      'template',
      'emuv',
      path.join(REPO_ROOT, 'helm/emuv'),
      '--namespace',
      'emuv-system',
      '--kube-version',
      info.kubernetesVersion,
      ...args,
    ]);
    expect(r.status, r.out).toBe(0);
    return YAML.parseAllDocuments(r.stdout)
      .map((d) => d.toJS())
      .filter(Boolean);
  };
  const committed = (file: string) =>
    YAML.parseAllDocuments(readFileSync(path.join(REPO_ROOT, file), 'utf8'))
      .map((d) => d.toJS())
      .filter(Boolean);

  it.each([
    ['templates/webhook.yaml', 'deploy/webhook/mutatingwebhookconfiguration.yaml'],
    ['templates/admission-policies.yaml', 'deploy/webhook/validatingadmissionpolicies.yaml'],
  ])('%s renders %s', (template, file) => {
    // Helm orders what it renders by kind; compare the objects, not their order.
    const byName = (docs: Json[]) => [...docs].sort((a, b) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`));
    expect(byName(render('--show-only', template))).toEqual(byName(committed(file)));
  });

  it('deploy/emuv.yaml is the whole chart rendered, without hooks and CRDs (npm run render:deploy)', () => {
    const rendered = render('--no-hooks', '--skip-crds');
    const file = committed('deploy/emuv.yaml');
    expect(file, 'deploy/emuv.yaml is stale: run npm run render:deploy').toEqual(rendered);
    expect(file.map((o: Json) => o.kind)).toEqual(expect.arrayContaining(['DaemonSet', 'Deployment', 'MutatingWebhookConfiguration']));
    expect(file.some((o: Json) => o.metadata?.annotations?.['helm.sh/hook'])).toBe(false);
  });

  it('the chart carries the same CRDs as deploy/crds', () => {
    for (const f of readdirSync(path.join(REPO_ROOT, 'deploy/crds')))
      expect(readFileSync(path.join(REPO_ROOT, 'helm/emuv/crds', f), 'utf8'), f).toBe(
        readFileSync(path.join(REPO_ROOT, 'deploy/crds', f), 'utf8'),
      );
  });
});

/** Maps apiVersion + kind to its REST collection through the apiserver's discovery documents. */
async function resourcePath(kube: Kube, apiVersion: string, kind: string) {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  let list: Json;
  try {
    list = await kube.get(base);
  } catch (e) {
    if (e instanceof KubeError && e.status === 404) return undefined;
    throw e;
  }
  const r = (list.resources ?? []).find((x: Json) => x.kind === kind && !String(x.name).includes('/'));
  return r ? { base, resource: r.name as string, namespaced: Boolean(r.namespaced) } : undefined;
}

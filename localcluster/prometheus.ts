// Prometheus on the local cluster, set up the way a user's Prometheus is when the prometheus-operator runs it:
// its scrape configuration is generated from the ServiceMonitor objects the apiserver holds, its rule files
// are the PrometheusRule objects' groups, and it finds the targets itself through Kubernetes service
// discovery (role `endpoints`, the operator's default) against the cluster's apiserver. Nothing about emuv is
// written here: which Services, ports, labels, intervals and relabelings come from the chart's objects.
//
//   prometheusBuild()         build.sh --print-dir -> the prometheus binary and the prometheus-operator CRDs
//   installOperatorCrds()     those CRDs, applied server-side, Established
//   scrapeConfigs(sm, sd)     one ServiceMonitor -> Prometheus scrape_configs (one job per endpoint)
//   Prometheus.start()        a prometheus process on the host (127.0.0.1, a free port): the host reaches the
//                             apiserver at NODE_IP and the pods through the pod CIDR route; its configuration,
//                             rule files and TSDB under <run dir>/prometheus, its log in <log dir>/prometheus.log
//
// The operator itself is not run (it is a Deployment built from another module, and it would only write the
// same configuration into a Secret): scrapeConfigs() follows its generation rules for the fields the
// translation understands, and refuses any other field rather than ignoring it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { KubeError, type Json, type Kube } from './cluster/kube.ts';
import type { ClusterInfo } from './cluster/layout.ts';
import { sleep, waitFor } from './cluster/process.ts';

const BUILD_SH = path.join(import.meta.dirname, 'cluster/build.sh');
/** The field manager of everything applied here (server-side apply). */
export const FIELD_MANAGER = 'emuv-localcluster';

export interface PrometheusBuild {
  /** The prometheus server built by build.sh (same Go module and version as its promtool). */
  prometheus: string;
  promtool: string;
  /** The prometheus-operator's CRD YAMLs build.sh copied from its Go module. */
  crdsDir: string;
}

/** Where build.sh put the prometheus binaries and the operator's CRDs; throws when they are not built. */
export function prometheusBuild(): PrometheusBuild {
  const r = spawnSync('bash', [BUILD_SH, '--print-dir'], { encoding: 'utf8' });
  const dirs = Object.fromEntries(
    (r.stdout ?? '')
      .trim()
      .split('\n')
      .map((l) => l.split('=', 2) as [string, string]),
  );
  const bin = dirs.PROMETHEUS_BIN;
  const crds = dirs.PROMETHEUS_OPERATOR_CRDS;
  if (r.status !== 0 || !bin || !crds) {
    throw new Error('prometheus or the prometheus-operator CRDs are not built: run localcluster/cluster/build.sh');
  }
  return { prometheus: path.join(bin, 'prometheus'), promtool: path.join(bin, 'promtool'), crdsDir: crds };
}

/** The CRDs in build.sh's directory (ServiceMonitor, PodMonitor, PrometheusRule). */
export function operatorCrds(build: PrometheusBuild): Json[] {
  return readdirSync(build.crdsDir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) => parseAllDocuments(readFileSync(path.join(build.crdsDir, f), 'utf8')).map((d) => d.toJSON() as Json))
    .filter((d) => d?.kind === 'CustomResourceDefinition');
}

/** The REST path of a namespaced or cluster-scoped object of a known kind (the ones this file applies). */
function objectPath(obj: Json): string {
  const plural: Record<string, string> = {
    CustomResourceDefinition: 'customresourcedefinitions',
    ServiceMonitor: 'servicemonitors',
    PodMonitor: 'podmonitors',
    PrometheusRule: 'prometheusrules',
  };
  const resource = plural[obj.kind as string];
  if (!resource) throw new Error(`objectPath: no resource known for kind ${obj.kind}`);
  const ns = obj.metadata?.namespace ? `/namespaces/${obj.metadata.namespace}` : '';
  return `/apis/${obj.apiVersion}${ns}/${resource}/${obj.metadata.name}`;
}

/**
 * Server-side apply (what `kubectl apply --server-side` sends), with strict field validation: a field the
 * schema does not know is an error, not silently dropped. Returns the object as stored.
 */
export function serverSideApply(kube: Kube, obj: Json): Promise<Json> {
  return kube.json(
    'PATCH',
    `${objectPath(obj)}?fieldManager=${FIELD_MANAGER}&fieldValidation=Strict&force=true`,
    JSON.stringify(obj),
    'application/apply-patch+yaml',
  );
}

/**
 * Applies the operator's CRDs and waits until the apiserver serves each: condition Established, and then a list
 * of the new kind that succeeds (for a moment after Established the apiserver still answers 429 "storage is
 * (re)initializing").
 */
export async function installOperatorCrds(kube: Kube, build: PrometheusBuild): Promise<string[]> {
  const crds = operatorCrds(build);
  for (const crd of crds) await serverSideApply(kube, crd);
  for (const crd of crds) {
    await waitFor(`CRD ${crd.metadata.name} Established`, 60_000, async () => {
      const c = await kube.get(objectPath(crd));
      return (c.status?.conditions ?? []).some((x: Json) => x.type === 'Established' && x.status === 'True') || undefined;
    });
    const served = (crd.spec.versions as Json[]).find((v) => v.served && v.storage);
    await waitFor(`${crd.spec.names.plural} served`, 60_000, async () =>
      kube.get(`/apis/${crd.spec.group}/${served.name}/${crd.spec.names.plural}?limit=1`).then(() => true),
    );
  }
  return crds.map((c) => c.metadata.name as string);
}

/** Deletes the operator's CRDs (and with them every object of their kinds); absent ones are fine. */
export async function removeOperatorCrds(kube: Kube, build: PrometheusBuild): Promise<void> {
  for (const crd of operatorCrds(build)) {
    await kube.json('DELETE', objectPath(crd)).catch((e: unknown) => {
      if (!(e instanceof KubeError && e.status === 404)) throw e;
    });
  }
}

/** How Prometheus reaches the apiserver for Kubernetes service discovery: the admin client certificate. */
export interface KubernetesSd {
  apiServer: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

export function clusterSd(info: ClusterInfo): KubernetesSd {
  return { apiServer: info.server, caFile: info.caFile, certFile: info.adminCert, keyFile: info.adminKey };
}

/** A label name as Prometheus's Kubernetes SD writes it into __meta_* names. */
const sanitize = (name: string) => name.replace(/[^a-zA-Z0-9_]/g, '_');
/** A literal for a relabelling regex (Prometheus anchors it; RE2 syntax). */
const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function onlyFields(what: string, obj: Json, allowed: string[]): void {
  const unknown = Object.keys(obj ?? {}).filter((k) => !allowed.includes(k));
  if (unknown.length) throw new Error(`scrapeConfigs: ${what} has fields this translation does not implement: ${unknown.join(', ')}`);
}

/** A ServiceMonitor relabeling (camelCase, as the CRD has it) as a Prometheus relabel_config. */
function relabelConfig(r: Json): Json {
  onlyFields('a relabeling', r, ['sourceLabels', 'separator', 'targetLabel', 'regex', 'modulus', 'replacement', 'action']);
  const out: Json = {};
  if (r.sourceLabels) out.source_labels = r.sourceLabels;
  if (r.separator !== undefined) out.separator = r.separator;
  if (r.targetLabel !== undefined) out.target_label = r.targetLabel;
  if (r.regex !== undefined) out.regex = r.regex;
  if (r.modulus !== undefined) out.modulus = r.modulus;
  if (r.replacement !== undefined) out.replacement = r.replacement;
  // The CRD accepts both spellings (Replace, replace); written in the lower-case form Prometheus documents.
  if (r.action !== undefined) out.action = String(r.action).toLowerCase();
  return out;
}

/**
 * One ServiceMonitor as Prometheus scrape_configs, one job per endpoint, named and labelled the way the
 * prometheus-operator does it: job `serviceMonitor/<namespace>/<name>/<index>`; targets kept when the Service's
 * labels match spec.selector and the endpoint port's name is the endpoint's `port`; the target labels
 * namespace, service, pod, container, endpoint, and job = the Service's name (or its spec.jobLabel label); then
 * the endpoint's own relabelings. Fields outside that set are refused, not ignored.
 */
export function scrapeConfigs(sm: Json, sd: KubernetesSd): Json[] {
  const ns = sm.metadata.namespace as string;
  const spec = sm.spec ?? {};
  onlyFields(`ServiceMonitor ${ns}/${sm.metadata.name} spec`, spec, ['selector', 'namespaceSelector', 'endpoints', 'jobLabel']);
  onlyFields(`ServiceMonitor ${ns}/${sm.metadata.name} spec.selector`, spec.selector, ['matchLabels']);
  onlyFields(`ServiceMonitor ${ns}/${sm.metadata.name} spec.namespaceSelector`, spec.namespaceSelector, ['matchNames', 'any']);
  const namespaces = spec.namespaceSelector?.any ? undefined : (spec.namespaceSelector?.matchNames ?? [ns]);
  const selector = Object.entries((spec.selector?.matchLabels ?? {}) as Record<string, string>);
  return ((spec.endpoints ?? []) as Json[]).map((ep, i) => {
    onlyFields(`ServiceMonitor ${ns}/${sm.metadata.name} endpoint ${i}`, ep, [
      'port',
      'path',
      'scheme',
      'interval',
      'scrapeTimeout',
      'honorLabels',
      'relabelings',
      'metricRelabelings',
    ]);
    if (typeof ep.port !== 'string') throw new Error(`scrapeConfigs: endpoint ${i} of ${ns}/${sm.metadata.name} has no port name`);
    const relabel: Json[] = [
      ...selector.map(([k, v]) => ({
        action: 'keep',
        source_labels: [`__meta_kubernetes_service_label_${sanitize(k)}`, `__meta_kubernetes_service_labelpresent_${sanitize(k)}`],
        regex: `(${literal(v)});true`,
      })),
      { action: 'keep', source_labels: ['__meta_kubernetes_endpoint_port_name'], regex: literal(ep.port) },
      // An endpoint backed by a Node names it (one backed by a Pod: the pod label below).
      {
        source_labels: ['__meta_kubernetes_endpoint_address_target_kind', '__meta_kubernetes_endpoint_address_target_name'],
        separator: ';',
        regex: 'Node;(.*)',
        replacement: '${1}',
        target_label: 'node',
      },
      // Pods that have finished are not scraped.
      { action: 'drop', source_labels: ['__meta_kubernetes_pod_phase'], regex: '(Failed|Succeeded)' },
      { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
      { source_labels: ['__meta_kubernetes_service_name'], target_label: 'service' },
      { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
      { source_labels: ['__meta_kubernetes_pod_container_name'], target_label: 'container' },
      // job: the Service's name, or the value of its spec.jobLabel label where the Service has one.
      { source_labels: ['__meta_kubernetes_service_name'], target_label: 'job' },
      ...(spec.jobLabel
        ? [{ source_labels: [`__meta_kubernetes_service_label_${sanitize(spec.jobLabel)}`], target_label: 'job', regex: '(.+)' }]
        : []),
      { target_label: 'endpoint', replacement: ep.port },
      ...((ep.relabelings ?? []) as Json[]).map(relabelConfig),
    ];
    const job: Json = {
      job_name: `serviceMonitor/${ns}/${sm.metadata.name}/${i}`,
      honor_labels: ep.honorLabels === true,
      kubernetes_sd_configs: [
        {
          role: 'endpoints',
          api_server: sd.apiServer,
          tls_config: { ca_file: sd.caFile, cert_file: sd.certFile, key_file: sd.keyFile },
          ...(namespaces ? { namespaces: { names: namespaces } } : {}),
        },
      ],
      metrics_path: ep.path ?? '/metrics',
      scheme: String(ep.scheme ?? 'http').toLowerCase(),
      relabel_configs: relabel,
    };
    if (ep.interval) job.scrape_interval = ep.interval;
    if (ep.scrapeTimeout) job.scrape_timeout = ep.scrapeTimeout;
    if (ep.metricRelabelings) job.metric_relabel_configs = (ep.metricRelabelings as Json[]).map(relabelConfig);
    return job;
  });
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released for prometheus to take). */
async function freePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** One sample of an instant vector: the series' labels and its value (NaN and ±Inf included). */
export interface Sample {
  metric: Record<string, string>;
  value: number;
}

export interface PrometheusOptions {
  serviceMonitors: Json[];
  prometheusRules: Json[];
  /** The global scrape and rule evaluation interval (a ServiceMonitor endpoint's own interval wins). */
  interval?: string;
}

/** A prometheus process on the host, configured from ServiceMonitors and PrometheusRules; stop() ends it. */
export class Prometheus {
  readonly url: string;
  readonly dir: string;
  readonly logFile: string;
  readonly #child: ChildProcess;

  private constructor(url: string, dir: string, logFile: string, child: ChildProcess) {
    this.url = url;
    this.dir = dir;
    this.logFile = logFile;
    this.#child = child;
  }

  static async start(info: ClusterInfo, build: PrometheusBuild, opts: PrometheusOptions): Promise<Prometheus> {
    const dir = path.join(info.paths.runDir, 'prometheus');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(path.join(dir, 'rules'), { recursive: true });
    const ruleFiles = opts.prometheusRules.map((r) => {
      const file = path.join(dir, 'rules', `${r.metadata.namespace}-${r.metadata.name}.yaml`);
      // A PrometheusRule's spec is a Prometheus rule file (groups), as the operator writes it into its ConfigMap.
      writeFileSync(file, stringify({ groups: r.spec.groups }));
      return file;
    });
    const sd = clusterSd(info);
    const interval = opts.interval ?? '2s';
    const config = {
      global: { scrape_interval: interval, evaluation_interval: interval },
      rule_files: ruleFiles,
      scrape_configs: opts.serviceMonitors.flatMap((sm) => scrapeConfigs(sm, sd)),
    };
    const configFile = path.join(dir, 'prometheus.yml');
    writeFileSync(configFile, stringify(config));
    const port = await freePort();
    const logFile = path.join(info.paths.logDir, 'prometheus.log');
    const log = openSync(logFile, 'a');
    // The TSDB path names the run directory, so a crashed run's prometheus is stopped by cleanupStale().
    const child = spawn(
      build.prometheus,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=info',
      ],
      { stdio: ['ignore', log, log] },
    );
    closeSync(log);
    const p = new Prometheus(`http://127.0.0.1:${port}`, dir, logFile, child);
    try {
      await waitFor(`prometheus ready at ${p.url}`, 60_000, async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited ${child.exitCode}: ${p.logTail()}`);
        const r = await fetch(`${p.url}/-/ready`).catch(() => undefined);
        return r?.ok || undefined;
      });
    } catch (e) {
      await p.stop();
      throw new Error(`${(e as Error).message}\n${p.logTail()}`, { cause: e });
    }
    return p;
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** GET of an /api/v1 endpoint; throws unless Prometheus says status success. */
  async api(endpoint: string, params: Record<string, string> = {}): Promise<Json> {
    const url = new URL(`/api/v1/${endpoint}`, this.url);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const res = await fetch(url);
    const body = (await res.json()) as Json;
    if (body.status !== 'success') throw new Error(`prometheus ${endpoint}: ${body.errorType}: ${body.error}`);
    return body.data;
  }

  /** An instant query; its result as samples (an instant vector; a scalar becomes one sample without labels). */
  async query(expr: string): Promise<Sample[]> {
    const data = await this.api('query', { query: expr });
    if (data.resultType === 'scalar') return [{ metric: {}, value: Number(data.result[1]) }];
    if (data.resultType !== 'vector') throw new Error(`query ${expr}: a ${data.resultType}, not an instant vector`);
    return (data.result as Json[]).map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
  }

  /** The active targets (/api/v1/targets). */
  async targets(): Promise<Json[]> {
    return (await this.api('targets', { state: 'active' })).activeTargets as Json[];
  }

  /** The rule groups as Prometheus evaluates them (/api/v1/rules). */
  async ruleGroups(): Promise<Json[]> {
    return (await this.api('rules')).groups as Json[];
  }

  /** SIGTERM, then SIGKILL after 10 s. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const done = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
    if (!done) {
      child.kill('SIGKILL');
      await exited;
    }
  }
}

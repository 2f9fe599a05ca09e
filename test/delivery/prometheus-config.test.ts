// The Prometheus configuration localcluster/prometheus.ts generates from the chart's ServiceMonitors and
// PrometheusRule (what the delivery test runs a real Prometheus on), checked without a cluster: the real
// promtool accepts it with the rule files, the jobs select the chart's Services by their labels and port name, and
// a ServiceMonitor field the translation does not implement is refused instead of silently dropped.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { prometheusBuild, scrapeConfigs, type KubernetesSd } from '../../localcluster/prometheus.ts';
import type { Json } from '../../localcluster/cluster/kube.ts';
import { REPO_ROOT, tempDir } from '../../localcluster/repo.ts';

const tmp = tempDir('emuv-prometheus-config-');
afterAll(() => tmp.cleanup());

function helmBin(): string {
  const r = spawnSync('bash', [join(REPO_ROOT, 'localcluster/cluster/build.sh'), '--print-dir'], { encoding: 'utf8' });
  const dir = /^HELM_BIN=(.+)$/m.exec(r.stdout ?? '')?.[1];
  if (!dir || !existsSync(join(dir, 'helm'))) throw new Error('helm not built: bash localcluster/cluster/build.sh');
  return join(dir, 'helm');
}

/** The chart's monitoring.coreos.com objects, rendered with both switches on. */
function render(): Json[] {
  const r = spawnSync(
    helmBin(),
    [
      'template',
      'emuv',
      join(REPO_ROOT, 'helm/emuv'),
      '-n',
      'emuv-system',
      '--set',
      'serviceMonitor.enabled=true',
      '--set',
      'prometheusRule.enabled=true',
    ],
    { encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: join(tmp.path, 'helm'), HELM_CONFIG_HOME: join(tmp.path, 'helm') } },
  );
  expect(r.status, r.stderr).toBe(0);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJSON() as Json)
    .filter((d) => d?.apiVersion === 'monitoring.coreos.com/v1');
}

describe('Prometheus configuration from the chart’s ServiceMonitors and PrometheusRule', () => {
  const objects = render();
  const monitors = objects.filter((o) => o.kind === 'ServiceMonitor');
  // `promtool check config` requires the client certificate and key to exist; it does not parse them.
  const sd: KubernetesSd = {
    apiServer: 'https://10.213.0.2:6443',
    caFile: join(tmp.path, 'ca.crt'),
    certFile: join(tmp.path, 'admin.crt'),
    keyFile: join(tmp.path, 'admin.key'),
  };
  for (const f of [sd.caFile, sd.certFile, sd.keyFile]) writeFileSync(f, '');

  it('promtool accepts the generated configuration and the rule file', () => {
    const dir = join(tmp.path, 'config');
    mkdirSync(dir, { recursive: true });
    const rule = objects.find((o) => o.kind === 'PrometheusRule')!;
    writeFileSync(join(dir, 'rules.yaml'), stringify({ groups: rule.spec.groups }));
    const config = {
      global: { scrape_interval: '2s', evaluation_interval: '2s' },
      rule_files: ['rules.yaml'],
      scrape_configs: monitors.flatMap((m) => scrapeConfigs(m, sd)),
    };
    writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
    const r = spawnSync(prometheusBuild().promtool, ['check', 'config', 'prometheus.yml'], { cwd: dir, encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: 4 rules found/);
  });

  it('keeps the chart’s Services by their labels and the metrics port, and names the job after the Service', () => {
    const agent = scrapeConfigs(
      monitors.find((m) => m.metadata.name === 'emuv-agent'),
      sd,
    );
    expect(agent.map((j) => j.job_name)).toEqual(['serviceMonitor/emuv-system/emuv-agent/0']);
    const [job] = agent;
    expect(job.honor_labels).toBe(true);
    expect(job.kubernetes_sd_configs).toEqual([
      {
        role: 'endpoints',
        api_server: sd.apiServer,
        tls_config: { ca_file: sd.caFile, cert_file: sd.certFile, key_file: sd.keyFile },
        namespaces: { names: ['emuv-system'] },
      },
    ]);
    const keeps = (job.relabel_configs as Json[]).filter((r) => r.action === 'keep');
    // Every matchLabels entry of the ServiceMonitor, in Prometheus's sanitised label names, and the port name.
    expect(keeps).toContainEqual({
      action: 'keep',
      source_labels: ['__meta_kubernetes_service_label_emuv_io_metrics', '__meta_kubernetes_service_labelpresent_emuv_io_metrics'],
      regex: '(true);true',
    });
    expect(keeps).toContainEqual({
      action: 'keep',
      source_labels: [
        '__meta_kubernetes_service_label_app_kubernetes_io_component',
        '__meta_kubernetes_service_labelpresent_app_kubernetes_io_component',
      ],
      regex: '(agent);true',
    });
    expect(keeps).toContainEqual({ action: 'keep', source_labels: ['__meta_kubernetes_endpoint_port_name'], regex: 'metrics' });
    expect(job.relabel_configs).toContainEqual({ source_labels: ['__meta_kubernetes_service_name'], target_label: 'job' });
    // The chart's own relabeling comes last, translated to Prometheus's field names.
    expect((job.relabel_configs as Json[]).at(-1)).toEqual({ source_labels: ['__meta_kubernetes_pod_node_name'], target_label: 'node' });
  });

  it('refuses a ServiceMonitor field it does not implement', () => {
    const sm = monitors[0];
    const withTls = { ...sm, spec: { ...sm.spec, endpoints: [{ ...sm.spec.endpoints[0], tlsConfig: { insecureSkipVerify: true } }] } };
    expect(() => scrapeConfigs(withTls, sd)).toThrow(/endpoint 0 has fields this translation does not implement: tlsConfig/);
    const withExpressions = { ...sm, spec: { ...sm.spec, selector: { matchExpressions: [{ key: 'a', operator: 'Exists' }] } } };
    expect(() => scrapeConfigs(withExpressions, sd)).toThrow(/spec\.selector has fields .*: matchExpressions/);
  });
});

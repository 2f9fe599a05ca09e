/**
 * The Helm chart (helm/emuv) rendered by the real Helm CLI, without a cluster: `helm lint --strict` and
 * `helm template` with the pinned binary that localcluster/cluster/build.sh builds (CI builds it before the tests).
 * What each value does to the rendered objects, what values.schema.json refuses, that values.yaml and the
 * schema describe the same documented keys, and the post-install notes.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import YAML, { isMap, isScalar, type YAMLMap } from 'yaml';
import { parseEmuvPolicy } from '../../operator/api/validate.ts';
import { DEFAULTS, policySpecSchema, POD_MEMORY_MODE_VALUES, SELECTOR_OPERATORS, type Schema } from '../../operator/api/schema.ts';
import { MAX_SLOTS_PER_GPU, SPILL_BACKEND_VALUES, VRAM_MODE_VALUES } from '../../common/contracts/emuv-node.ts';
import { LEADER_LEASE, WEBHOOK_SECRET } from '../../operator/names.ts';
import { HOST_SPILL_PATTERN } from '../../common/contracts/host-spill.ts';
import { envNames } from '../../common/flags.ts';
import { parseOperatorConfig, OPERATOR_COMMAND } from '../../operator/config.ts';
import { parsePluginConfig, parseRemoveAgentsConfig, PLUGIN_COMMAND, REMOVE_AGENTS_COMMAND } from '../../plugin/config.ts';
import { REPO_ROOT } from '../../localcluster/repo.ts';
import { ALLOCATION_VALUES, DEVICE_CLASS, DRA_DRIVER } from '../../common/contracts/dra.ts';
import { AGENT_POD_SELECTOR, AGENT_PORT_NAME } from '../../plugin/top/cluster-source.ts';

/** A rendered Kubernetes object; tests read whatever fields they assert on. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = any;

const CHART = join(REPO_ROOT, 'helm/emuv');
const NS = 'gpu-system';

/** The pinned Helm binary, found like the cluster harness finds it (build.sh --print-dir). */
function findHelm(): string {
  const script = join(REPO_ROOT, 'localcluster/cluster/build.sh');
  // --print-dir exits 1 when any cluster binary is missing; only Helm matters here.
  const r = spawnSync('bash', [script, '--print-dir'], { encoding: 'utf8' });
  const dir = /^HELM_BIN=(.+)$/m.exec(r.stdout ?? '')?.[1];
  const bin = dir ? join(dir, 'helm') : undefined;
  if (!bin || !existsSync(bin)) {
    throw new Error(
      `helm not found${bin ? ` at ${bin}` : ''}: the chart tests run the pinned Helm CLI that localcluster/cluster/build.sh builds ` +
        '(CI runs it before the tests). Build it with: bash localcluster/cluster/build.sh',
    );
  }
  return bin;
}

const helmBin = findHelm();
const helmHome = mkdtempSync(join(tmpdir(), 'emuv-chart-test-'));
afterAll(() => rmSync(helmHome, { recursive: true, force: true }));

function helm(args: string[]): { status: number | null; stdout: string; out: string } {
  const r = spawnSync(helmBin, args, {
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: helmHome,
      HELM_CACHE_HOME: join(helmHome, 'cache'),
      HELM_CONFIG_HOME: join(helmHome, 'config'),
      HELM_DATA_HOME: join(helmHome, 'data'),
      KUBECONFIG: join(helmHome, 'no-kubeconfig'),
    },
  });
  return { status: r.status, stdout: r.stdout, out: `${r.stdout}${r.stderr}` };
}

/** A value override: 'a.b=1' for --set, or [flag, 'a.b=1'] for --set-string and --set-json. */
type SetArg = string | ['--set' | '--set-string' | '--set-json', string];
type Sets = SetArg[];
const setArgs = (sets: Sets): string[] => sets.flatMap((s) => (typeof s === 'string' ? ['--set', s] : s));

function render(sets: Sets = [], chart = CHART): Obj[] {
  const r = helm(['template', 'emuv', chart, '--namespace', NS, ...setArgs(sets)]);
  expect(r.status, r.out).toBe(0);
  return YAML.parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Obj)
    .filter(Boolean);
}

function renderFails(sets: Sets): string {
  const r = helm(['template', 'emuv', CHART, '--namespace', NS, ...setArgs(sets)]);
  expect(r.status, r.out).not.toBe(0);
  return r.out;
}

const find = (docs: Obj[], kind: string, name: string): Obj => docs.find((d) => d.kind === kind && d.metadata?.name === name);
const all = (docs: Obj[], kind: string): Obj[] => docs.filter((d) => d.kind === kind);
const envOf = (container: Obj): Record<string, string> =>
  Object.fromEntries((container.env as Obj[]).filter((e) => 'value' in e).map((e) => [e.name, e.value]));
const agent = (docs: Obj[]) => find(docs, 'DaemonSet', 'emuv-agent');
const agentContainer = (docs: Obj[]) => agent(docs).spec.template.spec.containers[0];
const operatorContainer = (docs: Obj[]) => find(docs, 'Deployment', 'emuv-operator').spec.template.spec.containers[0];
const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('helm/emuv: lint', () => {
  it('passes helm lint --strict with the defaults and with every optional part enabled', () => {
    for (const sets of [
      [],
      [
        'serviceMonitor.enabled=true',
        'defaultPolicy.enabled=true',
        'grafanaDashboard.enabled=true',
        'kubernetesApi.host=10.0.0.10',
        'kubernetesApi.port=6443',
        'dra.enabled=true',
        'dra.allocation=DRA',
      ],
    ]) {
      const r = helm(['lint', '--strict', CHART, ...setArgs(sets)]);
      expect(r.status, r.out).toBe(0);
      expect(r.out).toContain('1 chart(s) linted, 0 chart(s) failed');
    }
  });
});

describe('helm/emuv: defaults', () => {
  const docs = render();

  it('render no ServiceMonitor, no EmuvPolicy and no dashboard ConfigMap', () => {
    expect(all(docs, 'ServiceMonitor')).toEqual([]);
    expect(all(docs, 'EmuvPolicy')).toEqual([]);
    expect(all(docs, 'ConfigMap')).toEqual([]);
  });

  it('the emuv-agent Service selects the agent pods and reaches their metrics port', () => {
    const svc = find(docs, 'Service', 'emuv-agent');
    expect(svc).toMatchObject({ metadata: { namespace: NS }, spec: { type: 'ClusterIP' } });
    expect(svc.spec.ports).toEqual([{ name: 'metrics', port: 9402, targetPort: 'metrics', protocol: 'TCP' }]);
    const pod = agent(docs).spec.template;
    expect(selects(svc.spec.selector, pod.metadata.labels)).toBe(true);
    expect(selects(svc.spec.selector, agent(docs).spec.selector.matchLabels)).toBe(true);
    expect(pod.spec.containers[0].ports).toContainEqual({ name: 'metrics', containerPort: 9402 });
    // Only the agent: not the operator pods.
    const operatorPod = find(docs, 'Deployment', 'emuv-operator').spec.template;
    expect(selects(svc.spec.selector, operatorPod.metadata.labels)).toBe(false);
  });

  it('the emuv-operator Service reaches the operator metrics port the operator is started with', () => {
    const svc = find(docs, 'Service', 'emuv-operator');
    expect(svc.spec.ports).toEqual([{ name: 'metrics', port: 8080, targetPort: 'metrics' }]);
    const pod = find(docs, 'Deployment', 'emuv-operator').spec.template;
    expect(selects(svc.spec.selector, pod.metadata.labels)).toBe(true);
    expect(envOf(operatorContainer(docs)).EMUV_OPERATOR_METRICS_PORT).toBe('8080');
    expect(operatorContainer(docs).ports).toContainEqual({ name: 'metrics', containerPort: 8080 });
    // The webhook's Service is still there, and is not a metrics Service.
    const webhook = find(docs, 'Service', 'emuv-webhook');
    expect(webhook.spec.ports).toEqual([{ name: 'https', port: 443, targetPort: 'webhook' }]);
    expect(webhook.metadata.labels['emuv.io/metrics']).toBeUndefined();
  });

  it('the agent pods carry what emuv top --agents-namespace looks for: its label selector and the metrics port name', () => {
    const pod = agent(docs).spec.template;
    const wanted = Object.fromEntries(AGENT_POD_SELECTOR.split(',').map((kv) => kv.split('=')));
    expect(selects(wanted, pod.metadata.labels)).toBe(true);
    // Only the agents: no other pod of the chart matches it.
    const others = docs.filter((d: Obj) => d.kind === 'Deployment' || d.kind === 'Job').map((d: Obj) => d.spec.template.metadata.labels);
    expect(others.length).toBeGreaterThan(0);
    expect(others.filter((l: Obj) => selects(wanted, l))).toEqual([]);
    expect(pod.spec.containers[0].ports.map((p: Obj) => p.name)).toContain(AGENT_PORT_NAME);
  });

  it('the agent: host paths, NVML and the owner DaemonSet in its environment; a 30 s grace period', () => {
    const ds = agent(docs);
    expect(ds.spec.template.spec.terminationGracePeriodSeconds).toBe(30);
    const env = envOf(agentContainer(docs));
    expect(env).toMatchObject({
      EMUV_AGENT_OWNER_DAEMONSET: `${NS}/emuv-agent`,
      EMUV_AGENT_SYS_ROOT: '/host/sys',
      EMUV_AGENT_PROC_ROOT: '/host/proc',
      EMUV_AGENT_DEV_ROOT: '/host/dev',
      EMUV_AGENT_HOST_DEV_DIR: '/dev',
      EMUV_AGENT_NVML_LIBRARY: 'libnvidia-ml.so.1',
      EMUV_AGENT_POD_RESOURCES_SOCKET: '/var/lib/kubelet/pod-resources/kubelet.sock',
    });
    expect(ds.metadata.namespace).toBe(NS);
    const volumes = Object.fromEntries((ds.spec.template.spec.volumes as Obj[]).map((v) => [v.name, v.hostPath]));
    expect(volumes).toMatchObject({
      'host-sys': { path: '/sys', type: 'Directory' },
      'host-proc': { path: '/proc', type: 'Directory' },
      'host-dev': { path: '/dev', type: 'Directory' },
      'pod-resources': { path: '/var/lib/kubelet/pod-resources', type: 'Directory' },
    });
  });

  it('every variable the chart gives a program is one of its flags, and the program takes the values', () => {
    // Set by Kubernetes or for the NVIDIA runtime, not flags: the rest must be read, or a chart value does nothing.
    const notFlags = new Set([
      'NVIDIA_VISIBLE_DEVICES',
      'NVIDIA_DRIVER_CAPABILITIES',
      'KUBERNETES_SERVICE_HOST',
      'KUBERNETES_SERVICE_PORT',
    ]);
    const flagVars = (c: Obj) => (c.env as Obj[]).filter((e) => e.value !== undefined && !notFlags.has(e.name));
    const cases = [
      { container: agentContainer(docs), command: PLUGIN_COMMAND, parse: (env: Record<string, string>) => parsePluginConfig([], env) },
      {
        container: operatorContainer(docs),
        command: OPERATOR_COMMAND,
        parse: (env: Record<string, string>) => parseOperatorConfig([], env),
      },
      {
        container: find(docs, 'Job', 'emuv-uninstall').spec.template.spec.containers[0],
        command: REMOVE_AGENTS_COMMAND,
        parse: (env: Record<string, string>) => parseRemoveAgentsConfig([], env),
      },
    ];
    for (const { container, command, parse } of cases) {
      const vars = flagVars(container);
      expect(vars.length, command.command).toBeGreaterThan(1);
      for (const v of vars) expect(envNames(command), `${command.command}: ${v.name}`).toContain(v.name);
      // The downward API's variables have no value in the rendered spec; stand in for them.
      const env = {
        NODE_NAME: 'gpu-1',
        POD_NAMESPACE: NS,
        POD_NAME: 'op-0',
        ...Object.fromEntries(vars.map((e: Obj) => [e.name, e.value])),
      };
      expect(() => parse(env), command.command).not.toThrow();
    }
    expect(parsePluginConfig([], { NODE_NAME: 'gpu-1', ...envOf(agentContainer(docs)) })).toMatchObject({
      sysRoot: '/host/sys',
      ownerDaemonSet: { namespace: NS, name: 'emuv-agent' },
      capacity: { slotsPerGpu: 16, hostBudget: { kind: 'auto' }, vramMode: 'fill', spillBackend: 'auto' },
    });
  });

  it('neither container overrides the Kubernetes API address', () => {
    for (const c of [agentContainer(docs), operatorContainer(docs)]) {
      const names = (c.env as Obj[]).map((e) => e.name);
      expect(names).not.toContain('KUBERNETES_SERVICE_HOST');
      expect(names).not.toContain('KUBERNETES_SERVICE_PORT');
    }
  });
});

describe('helm/emuv: agent host paths, NVML, Kubernetes API', () => {
  it('agent.hostPaths move the read-only host mounts and EMUV_AGENT_HOST_DEV_DIR; container paths stay', () => {
    const docs = render([
      'agent.hostPaths.sys=/srv/fixture/sys',
      'agent.hostPaths.proc=/srv/fixture/proc',
      'agent.hostPaths.dev=/srv/fixture/dev',
      'agent.hostPaths.podResourcesDir=/opt/kubelet/pod-resources',
    ]);
    const spec = agent(docs).spec.template.spec;
    const volumes = Object.fromEntries((spec.volumes as Obj[]).map((v) => [v.name, v.hostPath.path]));
    expect(volumes).toMatchObject({
      'host-sys': '/srv/fixture/sys',
      'host-proc': '/srv/fixture/proc',
      'host-dev': '/srv/fixture/dev',
      'pod-resources': '/opt/kubelet/pod-resources',
    });
    const mounts = Object.fromEntries((spec.containers[0].volumeMounts as Obj[]).map((m) => [m.name, m]));
    expect(mounts['host-sys']).toEqual({ name: 'host-sys', mountPath: '/host/sys', readOnly: true });
    expect(mounts['host-dev']).toEqual({ name: 'host-dev', mountPath: '/host/dev', readOnly: true });
    expect(mounts['pod-resources']).toEqual({ name: 'pod-resources', mountPath: '/var/lib/kubelet/pod-resources', readOnly: true });
    const env = envOf(spec.containers[0]);
    // The kubelet is told the host path of the device nodes; the agent looks at them through /host/dev.
    expect(env.EMUV_AGENT_HOST_DEV_DIR).toBe('/srv/fixture/dev');
    expect(env.EMUV_AGENT_DEV_ROOT).toBe('/host/dev');
    expect(env.EMUV_AGENT_SYS_ROOT).toBe('/host/sys');
    expect(env.EMUV_AGENT_POD_RESOURCES_SOCKET).toBe('/var/lib/kubelet/pod-resources/kubelet.sock');
  });

  it('agent.nvmlLibrary reaches EMUV_AGENT_NVML_LIBRARY ("off" included)', () => {
    expect(envOf(agentContainer(render(['agent.nvmlLibrary=off']))).EMUV_AGENT_NVML_LIBRARY).toBe('off');
    expect(envOf(agentContainer(render(['agent.nvmlLibrary=/usr/lib64/libnvidia-ml.so.1']))).EMUV_AGENT_NVML_LIBRARY).toBe(
      '/usr/lib64/libnvidia-ml.so.1',
    );
  });

  it('kubernetesApi.host and .port become KUBERNETES_SERVICE_HOST/PORT of the agent and the operator', () => {
    for (const sets of [
      ['kubernetesApi.host=10.0.0.10', 'kubernetesApi.port=6443'],
      [
        ['--set-string', 'kubernetesApi.host=10.0.0.10'],
        ['--set-string', 'kubernetesApi.port=6443'],
      ],
    ] satisfies Sets[]) {
      const docs = render(sets);
      for (const c of [agentContainer(docs), operatorContainer(docs)]) {
        expect(envOf(c)).toMatchObject({ KUBERNETES_SERVICE_HOST: '10.0.0.10', KUBERNETES_SERVICE_PORT: '6443' });
      }
    }
    const v6 = render(['kubernetesApi.host=fd00::10', 'kubernetesApi.port=6443']);
    expect(envOf(operatorContainer(v6)).KUBERNETES_SERVICE_HOST).toBe('fd00::10');
  });

  it('kubernetesApi.host without .port, or .port without .host, is refused with a message', () => {
    expect(renderFails(['kubernetesApi.host=10.0.0.10'])).toContain('kubernetesApi.host is set: set kubernetesApi.port too');
    expect(renderFails(['kubernetesApi.port=6443'])).toContain('kubernetesApi.port is set: set kubernetesApi.host too');
  });
});

describe('helm/emuv: Services and ServiceMonitors', () => {
  it('agent.service.enabled=false and operator.service.enabled=false drop the metrics Services, not the webhook Service', () => {
    const docs = render(['agent.service.enabled=false', 'operator.service.enabled=false']);
    expect(find(docs, 'Service', 'emuv-agent')).toBeUndefined();
    expect(find(docs, 'Service', 'emuv-operator')).toBeUndefined();
    expect(find(docs, 'Service', 'emuv-webhook')).toBeDefined();
  });

  it('Service annotations come from agent.service.annotations and operator.service.annotations', () => {
    const docs = render([
      ['--set-string', 'agent.service.annotations.prometheus\\.io/scrape=true'],
      ['--set-string', 'operator.service.annotations.team=gpu'],
    ]);
    expect(find(docs, 'Service', 'emuv-agent').metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true' });
    expect(find(docs, 'Service', 'emuv-operator').metadata.annotations).toEqual({ team: 'gpu' });
  });

  it('serviceMonitor.enabled renders one ServiceMonitor per metrics Service, with interval, timeout and labels', () => {
    const docs = render([
      'serviceMonitor.enabled=true',
      'serviceMonitor.interval=15s',
      'serviceMonitor.scrapeTimeout=5s',
      'serviceMonitor.labels.release=kube-prometheus-stack',
    ]);
    const monitors = all(docs, 'ServiceMonitor');
    expect(monitors.map((m) => m.metadata.name).sort()).toEqual(['emuv-agent', 'emuv-operator']);
    for (const m of monitors) {
      expect(m.apiVersion).toBe('monitoring.coreos.com/v1');
      expect(m.metadata.namespace).toBe(NS);
      expect(m.metadata.labels.release).toBe('kube-prometheus-stack');
      expect(m.spec.namespaceSelector).toEqual({ matchNames: [NS] });
      expect(m.spec.endpoints[0]).toMatchObject({ port: 'metrics', path: '/metrics', interval: '15s', scrapeTimeout: '5s' });
      // It selects exactly its metrics Service (not the webhook's), and that Service has the named port.
      const services = all(docs, 'Service').filter((s) => selects(m.spec.selector.matchLabels, s.metadata.labels));
      expect(services.map((s) => s.metadata.name)).toEqual([m.metadata.name]);
      expect(services[0].spec.ports.map((p: Obj) => p.name)).toContain('metrics');
    }
    // The per-container series keep the workload's namespace/pod/container labels (the dashboard uses them).
    const agentMonitor = find(docs, 'ServiceMonitor', 'emuv-agent');
    expect(agentMonitor.spec.endpoints[0].honorLabels).toBe(true);
    expect(agentMonitor.spec.endpoints[0].relabelings).toContainEqual({
      sourceLabels: ['__meta_kubernetes_pod_node_name'],
      targetLabel: 'node',
    });
  });

  it('without the operator Service only the agent is monitored; without the agent Service the chart refuses', () => {
    const docs = render(['serviceMonitor.enabled=true', 'operator.service.enabled=false']);
    expect(all(docs, 'ServiceMonitor').map((m) => m.metadata.name)).toEqual(['emuv-agent']);
    expect(renderFails(['serviceMonitor.enabled=true', 'agent.service.enabled=false'])).toContain(
      'serviceMonitor.enabled needs agent.service.enabled',
    );
  });
});

describe('helm/emuv: default EmuvPolicy', () => {
  it('defaultPolicy.enabled renders a cluster-scoped EmuvPolicy that the operator accepts, with the CRD defaults', () => {
    const docs = render(['defaultPolicy.enabled=true']);
    const policy = find(docs, 'EmuvPolicy', 'default');
    expect(policy.apiVersion).toBe('emuv.io/v1alpha1');
    expect(policy.metadata.namespace).toBeUndefined();
    expect(policy.spec).toEqual({ nodeSelector: {}, ...DEFAULTS, podMemory: { ...DEFAULTS.podMemory } });
    const parsed = parseEmuvPolicy(policy);
    expect(parsed.ok ? [] : parsed.errors).toEqual([]);
  });

  it('its name and spec come from values, optional fields included', () => {
    const docs = render([
      'defaultPolicy.enabled=true',
      'defaultPolicy.name=cluster',
      'defaultPolicy.spec.priority=5',
      'defaultPolicy.spec.hostSpillBudget=40%',
      'defaultPolicy.spec.slotsPerGpu=8',
      'defaultPolicy.spec.vramMode=Fixed',
      'defaultPolicy.spec.maxPerContainer=48Gi',
      ['--set-string', 'defaultPolicy.spec.namespaceSelector.matchLabels.emuv\\.io/allowed=true'],
      ['--set-json', 'defaultPolicy.spec.nodeSelector={"matchExpressions":[{"key":"nvidia.com/gpu.product","operator":"Exists"}]}'],
    ]);
    const policy = find(docs, 'EmuvPolicy', 'cluster');
    expect(policy.spec).toMatchObject({
      priority: 5,
      hostSpillBudget: '40%',
      slotsPerGpu: 8,
      vramMode: 'Fixed',
      maxPerContainer: '48Gi',
      namespaceSelector: { matchLabels: { 'emuv.io/allowed': 'true' } },
      nodeSelector: { matchExpressions: [{ key: 'nvidia.com/gpu.product', operator: 'Exists' }] },
    });
    const parsed = parseEmuvPolicy(policy);
    expect(parsed.ok ? [] : parsed.errors).toEqual([]);
  });

  it('values.schema.json describes exactly the fields, enums and bounds of EmuvPolicy.spec (operator/api/schema.ts)', () => {
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as Obj;
    const spec = schema.properties.defaultPolicy.properties.spec;
    expect(spec.additionalProperties).toBe(false);
    expect(Object.keys(spec.properties).sort()).toEqual(Object.keys(policySpecSchema.properties!).sort());
    const crd = policySpecSchema.properties!;
    expect(spec.properties.vramMode.enum).toEqual([...VRAM_MODE_VALUES]);
    expect(spec.properties.spillBackend.enum).toEqual([...SPILL_BACKEND_VALUES]);
    expect(spec.properties.podMemory.properties.mode.enum).toEqual([...POD_MEMORY_MODE_VALUES]);
    expect(spec.properties.nodeSelector.properties.matchExpressions.items.properties.operator.enum).toEqual([...SELECTOR_OPERATORS]);
    expect(spec.properties.slotsPerGpu.maximum).toBe(MAX_SLOTS_PER_GPU);
    const bounds = (s: Schema | undefined) => [s?.minimum, s?.maximum];
    expect(bounds(spec.properties.priority)).toEqual(bounds(crd.priority));
    expect(bounds(spec.properties.slotsPerGpu)).toEqual(bounds(crd.slotsPerGpu));
    expect(bounds(spec.properties.podMemory.properties.percentOfLimit)).toEqual(bounds(crd.podMemory?.properties?.percentOfLimit));
  });

  it('agent.hostSpill and defaultPolicy.spec.hostSpillBudget take the one grammar of common/contracts/host-spill.ts', () => {
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as Obj;
    expect(schema.properties.agent.properties.hostSpill.pattern).toBe(HOST_SPILL_PATTERN);
    expect(schema.properties.defaultPolicy.properties.spec.properties.hostSpillBudget.pattern).toBe(HOST_SPILL_PATTERN);
    for (const ok of ['Auto', 'auto', '90%', '64Gi']) {
      expect(envOf(agentContainer(render([`agent.hostSpill=${ok}`]))).EMUV_AGENT_HOST_SPILL).toBe(ok);
      expect(
        find(render(['defaultPolicy.enabled=true', `defaultPolicy.spec.hostSpillBudget=${ok}`]), 'EmuvPolicy', 'default').spec
          .hostSpillBudget,
      ).toBe(ok);
    }
    for (const bad of ['agent.hostSpill=95%', 'agent.hostSpill=AUTO', 'defaultPolicy.spec.hostSpillBudget=auto!'])
      expect(renderFails(['defaultPolicy.enabled=true', bad]), bad).toContain("values don't meet the specifications of the schema");
  });

  it('agent.spillBackend reaches EMUV_AGENT_SPILL_BACKEND; other words are refused', () => {
    expect(envOf(agentContainer(render(['agent.spillBackend=pinned']))).EMUV_AGENT_SPILL_BACKEND).toBe('pinned');
    expect(renderFails(['agent.spillBackend=Pinned'])).toContain("values don't meet the specifications of the schema");
  });

  it('the schema refuses what the CRD would refuse', () => {
    for (const bad of [
      'defaultPolicy.spec.vramMode=fill',
      'defaultPolicy.spec.hostSpillBudget=95%',
      'defaultPolicy.spec.vramReservePerGpu=1.5Gi',
      ['--set-string', 'defaultPolicy.spec.maxPerContainer=0'],
      'defaultPolicy.spec.slotsPerGpu=0',
      'defaultPolicy.spec.spillBackend=Vmm',
      'defaultPolicy.spec.podMemory.mode=Limit',
      'defaultPolicy.spec.priorty=3',
    ] satisfies SetArg[]) {
      expect(renderFails(['defaultPolicy.enabled=true', bad]), String(bad)).toContain("values don't meet the specifications of the schema");
    }
  });
});

describe('helm/emuv: Grafana dashboard ConfigMap', () => {
  const dashboard = readFileSync(join(REPO_ROOT, 'deploy/grafana/emuv-dashboard.json'), 'utf8');

  it('grafanaDashboard.enabled renders the dashboard of deploy/grafana, labelled for the Grafana sidecar', () => {
    const docs = render(['grafanaDashboard.enabled=true']);
    const cm = find(docs, 'ConfigMap', 'emuv-grafana-dashboard');
    expect(cm.metadata.namespace).toBe(NS);
    expect(cm.metadata.labels.grafana_dashboard).toBe('1');
    expect(Object.keys(cm.data)).toEqual(['emuv-dashboard.json']);
    expect(cm.data['emuv-dashboard.json']).toBe(dashboard.trimEnd());
    expect(JSON.parse(cm.data['emuv-dashboard.json'])).toEqual(JSON.parse(dashboard));
  });

  it('its namespace, labels and annotations are values', () => {
    const docs = render([
      'grafanaDashboard.enabled=true',
      'grafanaDashboard.namespace=monitoring',
      'grafanaDashboard.labels.grafana_dashboard=null',
      ['--set-string', 'grafanaDashboard.labels.dashboards=emuv'],
      'grafanaDashboard.annotations.grafana_folder=GPU',
    ]);
    const cm = find(docs, 'ConfigMap', 'emuv-grafana-dashboard');
    expect(cm.metadata.namespace).toBe('monitoring');
    expect(cm.metadata.labels.dashboards).toBe('emuv');
    expect(cm.metadata.labels.grafana_dashboard).toBeUndefined();
    expect(cm.metadata.annotations).toEqual({ grafana_folder: 'GPU' });
  });
});

describe('helm/emuv: values.schema.json', () => {
  it('refuses unknown keys', () => {
    for (const bad of [
      'agent.hostPaths.sysfs=/sys',
      'serviceMonitor.intervall=30s',
      'kubernetesApi.server=10.0.0.1',
      'grafanaDashboard.label=x',
    ]) {
      const out = renderFails([bad]);
      expect(out, bad).toContain("values don't meet the specifications of the schema");
      expect(out, bad).toContain('additional properties');
    }
  });

  it('refuses wrong types and malformed values', () => {
    for (const bad of [
      ['--set-string', 'agent.service.enabled=yes'],
      ['--set-string', 'serviceMonitor.enabled=true'],
      ['--set', 'kubernetesApi.port=70000'],
      ['--set-string', 'kubernetesApi.port=port'],
      ['--set', 'kubernetesApi.host=https://10.0.0.1'],
      ['--set', 'agent.hostPaths.sys=sys'],
      ['--set', 'agent.nvmlLibrary='],
      ['--set', 'serviceMonitor.interval=30 seconds'],
      ['--set', 'grafanaDashboard.namespace=Monitoring'],
      ['--set', 'serviceMonitor.labels.release=1'],
    ] satisfies SetArg[]) {
      expect(renderFails([bad]), bad.join(' ')).toContain("values don't meet the specifications of the schema");
    }
  });

  it('values.yaml and the schema hold the same keys, each documented with a "# --" comment', () => {
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as Obj;
    const doc = YAML.parseDocument(readFileSync(join(CHART, 'values.yaml'), 'utf8'));
    // Schema keys that values.yaml may leave out: Helm's global, and optional EmuvPolicy fields.
    const optional = new Set([
      'global',
      'defaultPolicy.spec.maxPerContainer',
      'defaultPolicy.spec.namespaceSelector',
      'defaultPolicy.spec.nodeSelector.matchLabels',
      'defaultPolicy.spec.nodeSelector.matchExpressions',
    ]);
    const problems: string[] = [];
    const walk = (map: YAMLMap, s: Obj, prefix: string) => {
      // Free-form maps (labels, resources, selectors' contents) are data, not settings.
      if (!s?.properties || s.additionalProperties !== false) return;
      if (s.type !== 'object') problems.push(`${prefix || '(root)'}: schema type is not object`);
      const seen = new Set<string>();
      map.items.forEach((pair, i) => {
        const key = isScalar(pair.key) ? String(pair.key.value) : '?';
        const path = prefix ? `${prefix}.${key}` : key;
        seen.add(key);
        // The comment of a nested map's first key belongs to the map node in the yaml library.
        const comment = (isScalar(pair.key) ? pair.key.commentBefore : undefined) ?? (i === 0 ? map.commentBefore : undefined) ?? '';
        if (!/(^|\n) ?-- \S/.test(comment)) problems.push(`${path}: no "# --" comment`);
        if (!(key in s.properties)) problems.push(`${path}: not in values.schema.json`);
        else if (isMap(pair.value)) walk(pair.value, s.properties[key], path);
      });
      for (const key of Object.keys(s.properties)) {
        const path = prefix ? `${prefix}.${key}` : key;
        if (!seen.has(key) && !optional.has(path)) problems.push(`${path}: in values.schema.json, not in values.yaml`);
      }
    };
    expect(isMap(doc.contents)).toBe(true);
    walk(doc.contents as YAMLMap, schema, '');
    expect(problems).toEqual([]);
  });
});

describe('helm/emuv: NOTES.txt', () => {
  // `helm template` does not render NOTES.txt and `helm install --dry-run` needs a cluster; so a copy of
  // the chart renders it with tpl, the same template engine with the same values and helpers.
  const dir = mkdtempSync(join(tmpdir(), 'emuv-chart-notes-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const copy = join(dir, 'emuv');
  cpSync(CHART, copy, { recursive: true });
  mkdirSync(join(copy, 'notes'));
  cpSync(join(copy, 'templates/NOTES.txt'), join(copy, 'notes/NOTES.txt'));
  writeFileSync(
    join(copy, 'templates/zz-notes.yaml'),
    'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: notes }\ndata:\n  notes: {{ tpl (.Files.Get "notes/NOTES.txt") . | quote }}\n',
  );
  const notes = (sets: Sets = []) => find(render(sets, copy), 'ConfigMap', 'notes').data.notes as string;

  it('say how to see the agents and nodes, which label nodes need, how to ask for memory, emuv top and metrics', () => {
    const text = notes();
    expect(text).toContain(`kubectl -n ${NS} get pods -l app.kubernetes.io/instance=emuv,app.kubernetes.io/component=agent`);
    expect(text).toContain('kubectl get emuvnodes');
    expect(text).toContain('nvidia.com/gpu.present=true');
    expect(text).toContain('emuv.io/vram-virtual: 28Gi');
    expect(text).toContain(`kubectl -n ${NS} port-forward $AGENT 9402`);
    expect(text).toContain('emuv top --url http://127.0.0.1:9402');
    expect(text).toContain('/metrics on port 9402');
    expect(text).toContain('--set serviceMonitor.enabled=true');
    expect(text).toContain('--set grafanaDashboard.enabled=true');
    expect(text).not.toContain('EmuvPolicy "default"');
    expect(text).not.toContain('kubernetesApi');
    expect(text).toContain('helm uninstall first deletes the agents in the foreground');
    expect(notes(['uninstallHook.enabled=false'])).not.toContain('helm uninstall first deletes');
  });

  it('follow the values: node selector, port, ServiceMonitors, dashboard, default policy, API address', () => {
    const text = notes([
      'agent.nodeSelector.nvidia\\.com/gpu\\.present=null',
      'agent.nodeSelector.gpu=yes',
      'agent.metricsPort=9500',
      'serviceMonitor.enabled=true',
      'grafanaDashboard.enabled=true',
      'grafanaDashboard.namespace=monitoring',
      'defaultPolicy.enabled=true',
      'kubernetesApi.host=10.0.0.10',
      'kubernetesApi.port=6443',
    ]);
    expect(text).toContain('nodes labelled gpu=yes');
    expect(text).not.toContain('nvidia.com/gpu.present');
    expect(text).toContain('emuv top --url http://127.0.0.1:9500');
    expect(text).toContain('ServiceMonitors emuv-agent and emuv-operator');
    expect(text).toContain('ConfigMap emuv-grafana-dashboard in namespace monitoring');
    expect(text).toContain('EmuvPolicy "default"');
    expect(text).toContain('10.0.0.10:6443');
  });

  it('say when DRA is enabled, with the driver, the class and the default allocation', () => {
    expect(notes()).not.toContain('DRA');
    const text = notes(['dra.enabled=true', 'dra.allocation=DRA']);
    expect(text).toContain(`DRA is enabled (driver ${DRA_DRIVER}, DeviceClass ${DEVICE_CLASS})`);
    expect(text).toContain('Nodes use DRA unless their EmuvPolicy sets allocation');
    expect(text).toContain('kubectl get resourceslices --field-selector spec.driver=gpu.emuv.io');
  });
});

describe("helm/emuv: the operator's RBAC names what it touches", () => {
  it("Events: create only, only in the default namespace (where cluster-scoped objects' events go)", () => {
    const docs = render([]);
    const cluster = find(docs, 'ClusterRole', 'emuv-operator');
    expect(cluster.rules.flatMap((r: Obj) => r.resources)).not.toContain('events');
    const role = find(docs, 'Role', 'emuv-operator-events');
    expect(role.metadata.namespace).toBe('default');
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['events'], verbs: ['create'] }]);
    const binding = find(docs, 'RoleBinding', 'emuv-operator-events');
    expect(binding.metadata.namespace).toBe('default');
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'emuv-operator', namespace: NS }]);
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'emuv-operator-events' });
  });

  it('its Lease and webhook Secret by name (create cannot be named); no Secret access with a provided certificate', () => {
    const self = find(render([]), 'Role', 'emuv-operator');
    expect(self.metadata.namespace).toBe(NS);
    expect(self.rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [LEADER_LEASE], verbs: ['get', 'update'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: [WEBHOOK_SECRET], verbs: ['get', 'update'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
    ]);
    const provided = find(
      render(['operator.certificate.mode=provided', 'operator.certificate.secretName=my-tls']),
      'Role',
      'emuv-operator',
    );
    expect(provided.rules.flatMap((r: Obj) => r.resources)).not.toContain('secrets');
  });
});

describe('helm/emuv: the uninstall hook', () => {
  it('runs emuv remove-agents as a pre-delete Job allowed only to read and delete the agent DaemonSet', () => {
    const docs = render([]);
    const job = find(docs, 'Job', 'emuv-uninstall');
    expect(job.metadata.annotations['helm.sh/hook']).toBe('pre-delete');
    const c = job.spec.template.spec.containers[0];
    expect(c.command).toEqual(['node', '/app/dist/emuv.mjs', 'remove-agents']);
    expect(c.env).toEqual(
      expect.arrayContaining([
        { name: 'EMUV_AGENT_OWNER_DAEMONSET', value: `${NS}/emuv-agent` },
        { name: 'EMUV_AGENT_TIMEOUT', value: '120' },
      ]),
    );
    expect(job.spec.template.spec.serviceAccountName).toBe('emuv-uninstall');
    expect(job.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
    const role = find(docs, 'Role', 'emuv-uninstall');
    expect(role.rules).toEqual([
      { apiGroups: ['apps'], resources: ['daemonsets'], resourceNames: ['emuv-agent'], verbs: ['get', 'delete'] },
    ]);
    // Its RBAC exists before the Job runs (lower hook weight) and goes away with it.
    for (const kind of ['ServiceAccount', 'Role', 'RoleBinding']) {
      const o = find(docs, kind, 'emuv-uninstall');
      expect(Number(o.metadata.annotations['helm.sh/hook-weight'])).toBeLessThan(Number(job.metadata.annotations['helm.sh/hook-weight']));
      expect(o.metadata.annotations['helm.sh/hook-delete-policy']).toContain('hook-succeeded');
    }
  });

  it('follows uninstallHook.timeoutSeconds and kubernetesApi; is absent when disabled or without node status', () => {
    const job = find(
      render(['uninstallHook.timeoutSeconds=30', 'kubernetesApi.host=10.0.0.1', 'kubernetesApi.port=6443']),
      'Job',
      'emuv-uninstall',
    );
    expect(job.spec.activeDeadlineSeconds).toBe(90);
    expect(job.spec.template.spec.containers[0].env).toEqual(
      expect.arrayContaining([
        { name: 'EMUV_AGENT_TIMEOUT', value: '30' },
        { name: 'KUBERNETES_SERVICE_HOST', value: '10.0.0.1' },
      ]),
    );
    expect(all(render(['uninstallHook.enabled=false']), 'Job')).toEqual([]);
    expect(all(render(['agent.nodeStatus=false']), 'Job')).toEqual([]);
    expect(renderFails(['uninstallHook.timeoutSeconds=5'])).toMatch(/timeoutSeconds/);
  });
});

describe('helm/emuv: NVML for the agent under the NVIDIA container runtime', () => {
  it('asks the runtime for NVML on every GPU and sets the RuntimeClass only when given', () => {
    const ds = (sets: Sets) => find(render(sets), 'DaemonSet', 'emuv-agent');
    const env = ds([]).spec.template.spec.containers[0].env;
    expect(env).toEqual(
      expect.arrayContaining([
        { name: 'NVIDIA_VISIBLE_DEVICES', value: 'all' },
        { name: 'NVIDIA_DRIVER_CAPABILITIES', value: 'utility' },
      ]),
    );
    expect(ds([]).spec.template.spec.runtimeClassName).toBeUndefined();
    expect(ds(['agent.runtimeClassName=nvidia']).spec.template.spec.runtimeClassName).toBe('nvidia');
    expect(renderFails(['agent.runtimeClassName=Not_Valid'])).toMatch(/runtimeClassName/);
  });
});

describe('helm/emuv: Dynamic Resource Allocation (dra.*)', () => {
  const DRA_ENV = [
    'EMUV_AGENT_DRA',
    'EMUV_AGENT_ALLOCATION',
    'EMUV_AGENT_CDI_DIR',
    'EMUV_AGENT_KUBELET_PLUGINS_DIR',
    'EMUV_AGENT_KUBELET_REGISTRY_DIR',
  ];
  const DRA_VOLUMES = ['kubelet-plugins', 'kubelet-registry', 'cdi'];
  const VAP = 'emuv-agent-own-resourceslices-only';
  const resourceRules = (role: Obj) => (role.rules as Obj[]).filter((r) => r.apiGroups.includes('resource.k8s.io'));

  it('off by default: no DeviceClass, no DRA variables, mounts, RBAC or policy; the rendered objects are unchanged', () => {
    const docs = render();
    expect(all(docs, 'DeviceClass')).toEqual([]);
    expect(find(docs, 'ValidatingAdmissionPolicy', VAP)).toBeUndefined();
    expect(find(docs, 'ValidatingAdmissionPolicyBinding', VAP)).toBeUndefined();
    const c = agentContainer(docs);
    expect((c.env as Obj[]).map((e) => e.name).filter((n) => DRA_ENV.includes(n))).toEqual([]);
    expect((agent(docs).spec.template.spec.volumes as Obj[]).map((v) => v.name).filter((n) => DRA_VOLUMES.includes(n))).toEqual([]);
    expect((c.volumeMounts as Obj[]).map((m) => m.name).filter((n) => DRA_VOLUMES.includes(n))).toEqual([]);
    expect(resourceRules(find(docs, 'ClusterRole', 'emuv-agent'))).toEqual([]);
    expect(resourceRules(find(docs, 'ClusterRole', 'emuv-operator'))).toEqual([]);
  });

  it('dra.enabled: the DeviceClass gpu.emuv.io selects the devices of the driver gpu.emuv.io', () => {
    const docs = render(['dra.enabled=true']);
    const classes = all(docs, 'DeviceClass');
    expect(classes.map((d) => d.metadata.name)).toEqual([DEVICE_CLASS]);
    expect(classes[0].apiVersion).toBe('resource.k8s.io/v1');
    expect(classes[0].metadata.namespace).toBeUndefined();
    expect(classes[0].spec).toEqual({ selectors: [{ cel: { expression: `device.driver == "${DRA_DRIVER}"` } }] });
    expect(all(render(['dra.enabled=true', 'dra.deviceClass.create=false']), 'DeviceClass')).toEqual([]);
  });

  it('dra.enabled: the agent gets its DRA flags, which it accepts, and the three host directories at their host paths', () => {
    for (const allocation of ALLOCATION_VALUES) {
      const docs = render(['dra.enabled=true', `dra.allocation=${allocation}`]);
      const c = agentContainer(docs);
      const env = envOf(c);
      expect(env).toMatchObject({
        EMUV_AGENT_DRA: 'on',
        EMUV_AGENT_ALLOCATION: allocation,
        EMUV_AGENT_CDI_DIR: '/var/run/cdi',
        EMUV_AGENT_KUBELET_PLUGINS_DIR: '/var/lib/kubelet/plugins',
        EMUV_AGENT_KUBELET_REGISTRY_DIR: '/var/lib/kubelet/plugins_registry',
      });
      for (const name of DRA_ENV) expect(envNames(PLUGIN_COMMAND), name).toContain(name);
      expect(parsePluginConfig([], { NODE_NAME: 'gpu-1', ...env })).toMatchObject({
        dra: {
          enabled: true,
          allocation,
          cdiDir: '/var/run/cdi',
          kubeletPluginsDir: '/var/lib/kubelet/plugins',
          kubeletRegistryDir: '/var/lib/kubelet/plugins_registry',
        },
      });
    }
    const docs = render([
      'dra.enabled=true',
      'agent.hostPaths.kubeletPluginsDir=/data/kubelet/plugins',
      'agent.hostPaths.kubeletRegistryDir=/data/kubelet/plugins_registry',
      'agent.hostPaths.cdiDir=/etc/cdi',
    ]);
    const spec = agent(docs).spec.template.spec;
    const volumes = Object.fromEntries((spec.volumes as Obj[]).map((v) => [v.name, v.hostPath]));
    const mounts = Object.fromEntries((spec.containers[0].volumeMounts as Obj[]).map((m) => [m.name, m]));
    const env = envOf(spec.containers[0]);
    // The kubelet dials the socket path the agent registers and the runtime reads the spec the agent
    // writes: inside and outside the container the paths are the same, and writable.
    // Of the kubelet's plugins directory only the driver's own folder is mounted (other plugins' sockets stay out).
    for (const [volume, path, variable, value] of [
      ['kubelet-plugins', '/data/kubelet/plugins/gpu.emuv.io', 'EMUV_AGENT_KUBELET_PLUGINS_DIR', '/data/kubelet/plugins'],
      ['kubelet-registry', '/data/kubelet/plugins_registry', 'EMUV_AGENT_KUBELET_REGISTRY_DIR', '/data/kubelet/plugins_registry'],
      ['cdi', '/etc/cdi', 'EMUV_AGENT_CDI_DIR', '/etc/cdi'],
    ] as const) {
      expect(volumes[volume].path, volume).toBe(path);
      expect(mounts[volume], volume).toEqual({ name: volume, mountPath: path });
      expect(env[variable], variable).toBe(value);
    }
    expect(volumes['kubelet-plugins'].type).toBe('DirectoryOrCreate');
    expect(volumes['kubelet-registry'].type).toBe('Directory');
    expect(volumes.cdi.type).toBe('DirectoryOrCreate');
  });

  it('dra.enabled: the agent may write ResourceSlices and read ResourceClaims; the operator may create claim templates', () => {
    const docs = render(['dra.enabled=true']);
    expect(resourceRules(find(docs, 'ClusterRole', 'emuv-agent'))).toEqual([
      {
        apiGroups: ['resource.k8s.io'],
        resources: ['resourceslices'],
        verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
      },
      { apiGroups: ['resource.k8s.io'], resources: ['resourceclaims'], verbs: ['get'] },
    ]);
    expect(resourceRules(find(docs, 'ClusterRole', 'emuv-operator'))).toEqual([
      { apiGroups: ['resource.k8s.io'], resources: ['resourceclaimtemplates'], verbs: ['create'] },
    ]);
  });

  it("dra.enabled: a ValidatingAdmissionPolicy keeps the agent's service account to its own node's slices", () => {
    const docs = render(['dra.enabled=true']);
    const policy = find(docs, 'ValidatingAdmissionPolicy', VAP);
    expect(policy.apiVersion).toBe('admissionregistration.k8s.io/v1');
    expect(policy.spec.failurePolicy).toBe('Fail');
    expect(policy.spec.matchConstraints.resourceRules).toEqual([
      { apiGroups: ['resource.k8s.io'], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE', 'DELETE'], resources: ['resourceslices'] },
    ]);
    expect(policy.spec.matchConditions).toEqual([
      { name: 'is-emuv-agent', expression: `request.userInfo.username == 'system:serviceaccount:${NS}:emuv-agent'` },
    ]);
    const variables = Object.fromEntries((policy.spec.variables as Obj[]).map((v) => [v.name, v.expression]));
    expect(variables.nodeName).toContain("request.userInfo.extra[?'authentication.kubernetes.io/node-name']");
    // DELETE has only oldObject, CREATE only object, UPDATE both.
    expect(variables.slices).toContain("request.operation == 'DELETE' ? [oldObject]");
    const checks = (policy.spec.validations as Obj[]).map((v) => v.expression).join('\n');
    expect(checks).toContain('variables.nodeName');
    expect(checks).toContain(`s.spec.driver == '${DRA_DRIVER}'`);
    expect(policy.spec.validations.every((v: Obj) => v.reason === 'Forbidden')).toBe(true);
    const binding = find(docs, 'ValidatingAdmissionPolicyBinding', VAP);
    expect(binding.spec).toEqual({ policyName: VAP, validationActions: ['Deny'] });
    // admissionPolicies.enabled=false drops it with the other policies; the DeviceClass stays.
    const without = render(['dra.enabled=true', 'admissionPolicies.enabled=false']);
    expect(find(without, 'ValidatingAdmissionPolicy', VAP)).toBeUndefined();
    expect(find(without, 'ValidatingAdmissionPolicyBinding', VAP)).toBeUndefined();
    expect(all(without, 'DeviceClass')).toHaveLength(1);
  });

  it('refuses DRA without agent.nodeStatus, allocation DRA without dra.enabled, and Kubernetes before 1.34', () => {
    expect(renderFails(['dra.enabled=true', 'agent.nodeStatus=false'])).toContain('dra.enabled needs agent.nodeStatus=true');
    expect(renderFails(['dra.allocation=DRA'])).toContain('dra.allocation is DRA: set dra.enabled=true too');
    const r = helm(['template', 'emuv', CHART, '--namespace', NS, '--set', 'dra.enabled=true', '--kube-version', '1.33.4']);
    expect(r.status, r.out).not.toBe(0);
    expect(r.out).toContain('dra.enabled needs Kubernetes 1.34 or later');
    // Off, the chart still installs on 1.33 (the device plugin path).
    expect(helm(['template', 'emuv', CHART, '--namespace', NS, '--kube-version', '1.33.4']).status).toBe(0);
  });

  it('values.schema.json refuses unknown allocation values and keys', () => {
    for (const bad of ['dra.allocation=dra', 'dra.allocation=Both', 'dra.deviceclass.create=true', 'agent.hostPaths.cdiDir=cdi'])
      expect(renderFails([bad]), bad).toContain("values don't meet the specifications of the schema");
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as Obj;
    expect(schema.properties.dra.properties.allocation.enum).toEqual([...ALLOCATION_VALUES]);
  });
});

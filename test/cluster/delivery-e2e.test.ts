// What `npm run demo` does, asserted. The emuv image (built from the Dockerfile's
// runtime stage) runs as the chart's agent DaemonSet and operator Deployment on the local cluster; a pod
// asking for emuv.io/vram-virtual: 28Gi runs on the simulated 8 GiB GeForce, sees 28 GiB, allocates
// 20 GiB and spills the part that does not fit; the spill shows in /metrics, /status, `emuv top --once`
// and `kubectl get emuvnodes`; the chart's ServiceMonitors and PrometheusRule pass the prometheus-operator's
// CRDs, and a Prometheus configured from them finds the agent and the operator through Kubernetes service
// discovery, has data for every panel of the Grafana dashboard and evaluates the alerts; `helm uninstall`
// leaves nothing of emuv on the node or in its status.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { DRA_DRIVER } from '../../common/contracts/dra.ts';
import { ENV, LIBRARY_FILES } from '../../common/contracts/interposer.ts';
import {
  CHART_DIR,
  ClusterDemo,
  DEMO_NAMESPACE,
  DEMO_POD,
  demoPod,
  DEVICE_PLUGIN_DIR,
  helm,
  installOperatorCrds,
  Kube,
  KubeError,
  kubectl,
  must,
  loadCluster,
  NAMESPACE,
  Prometheus,
  prometheusBuild,
  RELEASE,
  REPO_ROOT,
  removeOperatorCrds,
  serverSideApply,
  SIMULATED_GPU,
  waitFor,
  type ClusterInfo,
  type Json,
  type Observed,
  type Sample,
} from '../../localcluster/index.ts';
import { rows, TMUX_MISSING, tmuxServer, topCommand } from '../cli/tmux.ts';
import { nodeSlices } from './agent.ts';

const GiB = 1024 ** 3;
const VRAM_VIRTUAL = 'emuv.io/vram-virtual';
const VGPU = 'emuv.io/vgpu';
/** demo-geforce: 8 GiB - 512 MiB reserve = 7.5 GiB usable; 48 GiB of RAM -> "auto" spill budget 24 GiB. */
const EXPECTED_VIRTUAL = 7.5 * GiB + 24 * GiB;
const SPILL_BUDGET = 24 * GiB;

/**
 * The chart's monitoring objects, rendered with the install's values: ServiceMonitors scraping every 2 s (a
 * test cannot wait for 30 s intervals), and alert thresholds the demo's state crosses (20 of 28 GiB used,
 * about half of the 24 GiB spill budget in use) with no `for`, so that two alerts fire at their first evaluation.
 */
function renderMonitoring(info: ClusterInfo, valuesFile: string): Json[] {
  // A values file: `--set` would pass the fractions as strings, which the chart's values schema refuses.
  const monitoringValues = path.join(info.paths.runDir, 'emuv-monitoring-values.json');
  writeFileSync(
    monitoringValues,
    JSON.stringify({
      serviceMonitor: { enabled: true, interval: '2s', scrapeTimeout: '1s' },
      prometheusRule: { enabled: true, containerLimitFraction: 0.5, spillBudgetFraction: 0.25, for: '0s' },
    }),
  );
  const out = must(
    'helm template (monitoring)',
    helm(info, ['template', RELEASE, CHART_DIR, '-n', NAMESPACE, '--values', valuesFile, '--values', monitoringValues]),
  );
  return parseAllDocuments(out)
    .map((d) => d.toJSON() as Json)
    .filter((d) => d?.apiVersion === 'monitoring.coreos.com/v1');
}

/** A panel query's result, judged: undefined when it is what the panel should show, else why not. */
type PanelCheck = (samples: Sample[]) => string | undefined;

/** Exactly one series whose labels include `labels`, and its value passes `ok`. */
const series =
  (labels: Record<string, string>, ok: (v: number) => boolean, want: string): PanelCheck =>
  (samples) => {
    const match = samples.filter((x) => Object.entries(labels).every(([k, v]) => x.metric[k] === v));
    if (match.length !== 1) return `want one series with ${JSON.stringify(labels)}, got ${JSON.stringify(samples)}`;
    return ok(match[0]!.value) ? undefined : `want ${want}, got ${match[0]!.value} (${JSON.stringify(match[0]!.metric)})`;
  };

/** Every target of every panel of the dashboard, with Grafana's template variables substituted. */
function dashboardQueries(): { key: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(path.join(REPO_ROOT, 'deploy/grafana/emuv-dashboard.json'), 'utf8')) as Json;
  // Grafana's built-in intervals, as Grafana computes them for a 2 s scrape interval; the dashboard's own
  // variables select a data source only (they never appear in a query). Any other $variable is an error.
  const builtins: Record<string, string> = { __rate_interval: '8s', __interval: '2s', __range: '5m' };
  const walk = (panels: Json[]): Json[] => panels.flatMap((p) => [p, ...walk(p.panels ?? [])]);
  return walk(dashboard.panels).flatMap((p: Json) =>
    ((p.targets ?? []) as Json[]).map((t) => ({
      key: `${p.title} / ${t.refId}`,
      expr: String(t.expr).replace(/\$\{?(\w+)\}?/g, (_m, name: string) => {
        const v = builtins[name];
        if (v === undefined) throw new Error(`panel ${p.title}: no value for template variable $${name}`);
        return v;
      }),
    })),
  );
}

describe('emuv installed with its chart: a 28Gi pod on a simulated 8 GiB GeForce, observed, then uninstalled', () => {
  const info = loadCluster();
  const kube = new Kube(info);
  // The steps `npm run demo` runs, on the simulated GPU whatever this machine has.
  const demo = new ClusterDemo(info, kube, { driver: null, log: (s: string) => console.log(`[delivery-e2e] ${s}`) });
  let installed = false;
  let observed: Observed;

  beforeAll(() => {
    demo.loadImages();
    demo.prepareNode();
  }, 300_000);

  let prometheus: Prometheus | undefined;
  const promBuild = prometheusBuild();

  afterAll(async () => {
    await prometheus?.stop();
    await removeOperatorCrds(kube, promBuild).catch(() => undefined);
    if (installed && demo.isInstalled()) await demo.uninstall().catch(() => undefined);
    await kube.deleteNamespace(DEMO_NAMESPACE).catch(() => undefined);
    await kube.deleteNamespace(NAMESPACE).catch(() => undefined);
    await demo.unlabelNode().catch(() => undefined);
    kube.close();
  }, 300_000);

  it('helm install: the agent DaemonSet and both operator replicas become ready; the node offers its virtual memory', async () => {
    const result = await demo.install();
    installed = true;
    expect(result.vramVirtualBytes).toBe(EXPECTED_VIRTUAL);
    // helm --wait accepts a DaemonSet with maxUnavailable pods not ready; the agent's readiness comes next.
    await waitFor('the agent pod ready', 60_000, async () => {
      const ds = await kube.get(`/apis/apps/v1/namespaces/${NAMESPACE}/daemonsets/emuv-agent`);
      return ds.status?.numberReady === 1 || undefined;
    });
    const dep = await kube.get(`/apis/apps/v1/namespaces/${NAMESPACE}/deployments/emuv-operator`);
    expect(dep.status.readyReplicas).toBe(2);
    // The agent installed the interposer onto the host, where Allocate mounts it from.
    for (const f of Object.values(LIBRARY_FILES)) expect(existsSync(path.join(demo.node.interposer, 'lib', f)), f).toBe(true);
    // emuv.io/vgpu reaches node status with the kubelet's next status update after registration.
    const n = await waitFor('16 emuv.io/vgpu slots in node status', 60_000, async () => {
      const node = await kube.node();
      return node.status.allocatable[VGPU] === '16' ? node : undefined;
    });
    expect(n.metadata.labels['emuv.io/gpu.count']).toBe('1');
  });

  it('runs the 28Gi pod: mutated by the webhook, scheduled by bytes, sees 28 GiB and allocates 20 GiB', async () => {
    const w = await demo.runWorkload();
    const c = w.pod.spec.containers[0];
    expect(c.resources.limits).toMatchObject({ [VRAM_VIRTUAL]: '28Gi', [VGPU]: '1' });
    expect(c.env).toContainEqual({ name: ENV.limitBytes, value: String(28 * GiB) });
    expect(w.log).toContain('card: cuMemGetInfo total 28.0 GiB free 28.0 GiB; cuDeviceTotalMem 28.0 GiB; NVML total 28.0 GiB');
    expect(w.log).toContain('allocated 20 x 1 GiB through cuMemAlloc');
    expect(w.log).toContain('data check on the last tensor: ok');
    expect(w.log).toContain('card after loading: total 28.0 GiB, free 8.0 GiB');
  });

  it('shows the spill in /status, /metrics, emuv top --once and kubectl get emuvnodes', async () => {
    observed = await demo.observe();
    const c = (observed.status.containers as Json[]).find((x) => x.owner?.pod === DEMO_POD)!;
    expect(c.owner).toMatchObject({ namespace: DEMO_NAMESPACE, pod: DEMO_POD, container: 'main' });
    expect(c.limitBytes).toBe(28 * GiB);
    // VRAM first, up to the share of the 7.5 GiB usable; the rest of the 20 GiB in host RAM.
    expect(c.vramUsedBytes).toBeGreaterThan(5 * GiB);
    expect(c.vramUsedBytes).toBeLessThanOrEqual(7.5 * GiB);
    expect((c.vramUsedBytes + c.hostUsedBytes) / GiB).toBeCloseTo(20, 1);

    const sample = (name: string) => {
      const m = new RegExp(`^${name}\\{namespace="${DEMO_NAMESPACE}",pod="${DEMO_POD}",container="main",gpu="[^"]+"\\} (\\d+)$`, 'm').exec(
        observed.metrics,
      );
      return m ? Number(m[1]) : undefined;
    };
    expect(sample('emuv_container_host_spill_bytes')).toBe(c.hostUsedBytes);
    expect(sample('emuv_container_vram_used_bytes')).toBe(c.vramUsedBytes);
    expect(sample('emuv_container_limit_bytes')).toBe(28 * GiB);

    expect(observed.top).toMatch(new RegExp(`${DEMO_NAMESPACE}/${DEMO_POD}/main +28\\.0G +[0-9.]+G +1[0-9]\\.[0-9]G`));
    // kubectl's columns for EmuvNode (-o wide): NAME GPUS VRAM VIRTUAL COMMITTED SPILL SPILL-BUDGET READY POLICY ALLOCATION AGE.
    const row = observed.emuvNodes
      .split('\n')
      .find((l) => l.startsWith(`${info.nodeName} `))!
      .split(/\s+/);
    // Sizes for people (status.summary), the byte fields stay for programs; -o wide adds the spill budget.
    expect(row.slice(0, 5)).toEqual([info.nodeName, '1', '7.5Gi', '31.5Gi', '28Gi']);
    expect(row[5]).toMatch(/^[1-9][0-9.]*Gi$/);
    expect(row.slice(6, 8)).toEqual(['24Gi', 'SpecApplied']);
    // kubectl describe shows the Ready condition with its reason and message.
    const described = must('kubectl describe emuvnode', kubectl(info, ['describe', 'emuvnode', info.nodeName]));
    expect(described).toMatch(/Reason: +SpecApplied/);
    expect(described).toMatch(/Message: +publishing \d+ bytes of emuv.io\/vram-virtual/);
    expect(observed.emuvNodes.split('\n')[0]).toMatch(
      /^NAME +GPUS +VRAM +VIRTUAL +COMMITTED +SPILL +SPILL BUDGET +READY +POLICY +ALLOCATION +AGE$/,
    );
  });

  it('emuv top in a real terminal (tmux), every node through the Kubernetes API: the node, its GPU, the demo pod spilling', async () => {
    if (TMUX_MISSING) throw new Error(TMUX_MISSING);
    // As an operator runs it from a workstation: the admin kubeconfig, no port-forward (the apiserver's pod proxy).
    const term = tmuxServer('emuv-top-demo', { KUBECONFIG: info.kubeconfig });
    try {
      term.start('demo', `${topCommand(`--agents-namespace ${NAMESPACE}`)}; echo EXITED $?`, 160, 40);
      const row = (l: string[]) => l.find((x) => x.slice(2).startsWith(`${DEMO_NAMESPACE}/${DEMO_POD}/main `));
      let lines = await term.waitScreen('demo', 'the demo pod row', (l) => row(l) !== undefined, 30_000);
      expect(lines[0]).toMatch(
        new RegExp(
          `^ emuv top │ node ${info.nodeName} │ .*│ node ${info.nodeName} \\(1/1, \\[ \\] other nodes\\): pod ${NAMESPACE}/emuv-agent-`,
        ),
      );
      expect(lines.some((l) => l.startsWith(`GPU ${SIMULATED_GPU} `))).toBe(true);
      // LIMIT 28.0G, VRAM a few G, SPILL above zero: the same figures /status gave.
      expect(row(lines)).toMatch(/ 28\.0G +[0-9.]+G +1[0-9]\.[0-9]G /);
      expect(rows(lines)).toEqual([`${DEMO_NAMESPACE}/${DEMO_POD}/main`]);
      // One node: ] comes back to it (a fresh view: the row returns with the next document).
      term.keys('demo', ']');
      lines = await term.waitScreen('demo', 'the same node after ]', (l) => row(l) !== undefined && l[0]!.includes('(1/1'), 15_000);
      term.keys('demo', 'q');
      lines = await term.waitScreen('demo', 'top to exit', (l) => l.some((x) => x.startsWith('EXITED')));
      expect(lines.filter((l) => l.trim())).toEqual(['EXITED 0']);
      expect(term.paneFlag('demo', 'alternate_on')).toBe('0');
    } finally {
      term.kill();
    }
  });

  it("the prometheus-operator's CRDs accept the chart's ServiceMonitors and PrometheusRule, and refuse invalid ones", async () => {
    const crds = await installOperatorCrds(kube, promBuild);
    expect(crds.sort()).toEqual([
      'podmonitors.monitoring.coreos.com',
      'prometheusrules.monitoring.coreos.com',
      'servicemonitors.monitoring.coreos.com',
    ]);
    const objects = renderMonitoring(info, demo.valuesFile);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'PrometheusRule/emuv',
      'ServiceMonitor/emuv-agent',
      'ServiceMonitor/emuv-operator',
    ]);
    for (const o of objects) {
      // Server-side apply with strict field validation: a field the CRD's schema does not know fails too.
      const stored = await serverSideApply(kube, o);
      expect(stored.metadata.uid, `${o.kind}/${o.metadata.name}`).toBeTruthy();
      expect(stored.spec, `${o.kind}/${o.metadata.name} as stored`).toMatchObject(o.spec);
    }
    // The schema is enforced: a duration the CRD's pattern refuses, a rule without its required expr, a field
    // that does not exist. None of them is stored.
    const sm = objects.find((o) => o.metadata.name === 'emuv-agent')!;
    const rule = objects.find((o) => o.kind === 'PrometheusRule')!;
    const invalid: [Json, RegExp][] = [
      [
        {
          ...sm,
          metadata: { ...sm.metadata, name: 'invalid-interval' },
          spec: { ...sm.spec, endpoints: [{ ...sm.spec.endpoints[0], interval: '2 seconds' }] },
        },
        /spec\.endpoints\[0\]\.interval: Invalid value: "2 seconds": spec\.endpoints\[0\]\.interval in body should match/,
      ],
      [
        {
          ...rule,
          metadata: { ...rule.metadata, name: 'invalid-rule' },
          spec: { groups: [{ name: 'emuv', rules: [{ alert: 'NoExpression', labels: { severity: 'info' } }] }] },
        },
        /spec\.groups\[0\]\.rules\[0\]\.expr: Required value/,
      ],
      [
        {
          ...sm,
          metadata: { ...sm.metadata, name: 'invalid-field' },
          spec: { ...sm.spec, endpoints: [{ ...sm.spec.endpoints[0], honourLabels: true }] },
        },
        /\.spec\.endpoints\[0\]\.honourLabels: field not declared in schema|unknown field "spec\.endpoints\[0\]\.honourLabels"/,
      ],
    ];
    for (const [o, why] of invalid) {
      const err = await serverSideApply(kube, o).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, `${o.kind}/${o.metadata.name} refused`).toBeInstanceOf(KubeError);
      expect((JSON.parse((err as KubeError).body) as Json).message).toMatch(why);
    }
    const names = async (plural: string) =>
      ((await kube.get(`/apis/monitoring.coreos.com/v1/namespaces/${NAMESPACE}/${plural}`)).items as Json[])
        .map((x) => x.metadata.name)
        .sort();
    expect(await names('servicemonitors')).toEqual(['emuv-agent', 'emuv-operator']);
    expect(await names('prometheusrules')).toEqual(['emuv']);
  });

  it('Prometheus configured from those objects finds the agent and the operator by Kubernetes SD; every dashboard panel has its data; the alerts evaluate', async () => {
    // What the apiserver holds, as the prometheus-operator would read it.
    const list = async (plural: string) =>
      (await kube.get(`/apis/monitoring.coreos.com/v1/namespaces/${NAMESPACE}/${plural}`)).items as Json[];
    prometheus = await Prometheus.start(info, promBuild, {
      serviceMonitors: await list('servicemonitors'),
      prometheusRules: await list('prometheusrules'),
    });
    const prom = prometheus;
    const agentPod = (
      (await kube.get(`/api/v1/namespaces/${NAMESPACE}/pods?labelSelector=app.kubernetes.io/component%3Dagent`)).items as Json[]
    )[0]!;
    const up = await waitFor('the agent and both operator replicas up in /api/v1/targets', 60_000, async () => {
      const t = await prom.targets();
      const pool = (name: string) => t.filter((x) => x.scrapePool === `serviceMonitor/${NAMESPACE}/${name}/0`);
      const ready = pool('emuv-agent').length === 1 && pool('emuv-operator').length === 2 && t.every((x) => x.health === 'up');
      if (!ready) throw new Error(JSON.stringify(t.map((x) => [x.scrapePool, x.scrapeUrl, x.health, x.lastError])));
      return { agent: pool('emuv-agent')[0]!, operators: pool('emuv-operator') };
    });
    // Found through the Endpoints of the chart's Services, labelled as the ServiceMonitors say.
    expect(up.agent.discoveredLabels).toMatchObject({
      __meta_kubernetes_service_name: 'emuv-agent',
      __meta_kubernetes_endpoint_port_name: 'metrics',
      __meta_kubernetes_pod_name: agentPod.metadata.name,
    });
    expect(up.agent.labels).toMatchObject({
      job: 'emuv-agent',
      namespace: NAMESPACE,
      service: 'emuv-agent',
      pod: agentPod.metadata.name,
      endpoint: 'metrics',
      node: info.nodeName,
    });
    expect(up.agent.scrapeUrl).toBe(`${demo.agentUrl}/metrics`);
    expect(up.agent.scrapeInterval).toBe('2s');
    for (const o of up.operators) expect(o.labels).toMatchObject({ job: 'emuv-operator', namespace: NAMESPACE, endpoint: 'metrics' });

    // Admissions while Prometheus scrapes, so the webhook latency panel has a rate to show (server-side dry runs
    // of the demo pod: the webhook answers them as it answers real ones).
    for (let i = 0; i < 5; i++) {
      const pod = demoPod(demo.node);
      const p = await kube.json('POST', `/api/v1/namespaces/${DEMO_NAMESPACE}/pods?dryRun=All`, {
        ...pod,
        metadata: { ...pod.metadata, name: `${DEMO_POD}-dry-run-${i}` },
      });
      expect(p.spec.containers[0].resources.limits[VGPU]).toBe('1');
    }

    const gpuSeries = { job: 'emuv-agent', node: info.nodeName, gpu: SIMULATED_GPU };
    const nodeSeries = { job: 'emuv-agent', node: info.nodeName };
    // honorLabels: the workload's own namespace, pod and container, not the agent's; node from the relabeling.
    const container = { namespace: DEMO_NAMESPACE, pod: DEMO_POD, container: 'main' };
    const one = (ok: (v: number) => boolean, want: string) => series({}, ok, want);
    const expected: Record<string, PanelCheck> = {
      'Virtual GPU memory offered / A': one((v) => v === EXPECTED_VIRTUAL, '31.5 GiB'),
      'Committed by containers / A': one((v) => v === 28 * GiB, "the demo pod's 28 GiB"),
      'Host RAM holding spill / A': one((v) => v > 0, 'spill in use'),
      'Spill budget / A': one((v) => v === SPILL_BUDGET, '24 GiB'),
      'VRAM used per GPU vs physical / A': series(gpuSeries, (v) => v > 5 * GiB && v <= 8 * GiB, 'the share in use'),
      'VRAM used per GPU vs physical / B': series(gpuSeries, (v) => v === 8 * GiB, '8 GiB'),
      'Host spill per node vs budget / A': series(nodeSeries, (v) => v > 0, 'spill in use'),
      'Host spill per node vs budget / B': series(nodeSeries, (v) => v === SPILL_BUDGET, '24 GiB'),
      'Per container: VRAM / A': series({ ...container, node: info.nodeName }, (v) => v > 5 * GiB && v <= 7.5 * GiB, 'its VRAM'),
      'Per container: spilled to host RAM / A': series({ ...container, node: info.nodeName }, (v) => v > 0, 'spilled bytes > 0'),
      'Per container: limit / A': series({ ...container, node: info.nodeName }, (v) => v === 28 * GiB, '28 GiB'),
      'Spill events and refused allocations (rate) / A': series(container, (v) => v >= 0, 'a rate'),
      'Spill events and refused allocations (rate) / B': series(container, (v) => v === 0, 'none refused'),
      'Device plugin: allocations, registrations, restarts / A': series({ outcome: 'ok' }, (v) => v >= 0, 'a rate'),
      'Device plugin: allocations, registrations, restarts / B': one((v) => v >= 0, 'a rate'),
      'Device plugin: allocations, registrations, restarts / C': one((v) => v >= 0, 'a rate'),
      'Unhealthy GPUs / A': one((v) => v === 0, 'none'),
      'Webhook latency p99 / A': one((v) => Number.isFinite(v) && v > 0, 'a latency in seconds'),
      'Operator: reconcile errors and queue / A': one((v) => v === 0, 'no errors'),
      'Operator: reconcile errors and queue / B': one((v) => v >= 0, 'a depth'),
    };
    const queries = dashboardQueries();
    // Every panel has an expectation and every expectation a panel: a new panel needs one here.
    expect(queries.map((q) => q.key).sort()).toEqual(Object.keys(expected).sort());
    await waitFor('every dashboard panel to show its series', 60_000, async () => {
      const wrong: string[] = [];
      for (const q of queries) {
        const why = expected[q.key]!(await prom.query(q.expr));
        if (why) wrong.push(`${q.key} (${q.expr}): ${why}`);
      }
      if (wrong.length) throw new Error(wrong.join('\n'));
      return true;
    });

    // The alert rules as Prometheus evaluates them against the scraped series: both thresholds the demo crosses
    // fire, with the labels their annotations use; nothing was refused and the agent is up.
    const rules = await waitFor('the emuv alerts evaluated', 30_000, async () => {
      const group = (await prom.ruleGroups()).find((g) => g.name === 'emuv');
      const r = (group?.rules ?? []) as Json[];
      return r.length > 0 && r.every((x) => x.health === 'ok' && x.lastEvaluation !== '0001-01-01T00:00:00Z') ? r : undefined;
    });
    const state = Object.fromEntries(rules.map((r) => [r.name, r]));
    expect(Object.keys(state)).toEqual(['EmuvSpillBudgetNearlyUsed', 'EmuvContainerAtLimit', 'EmuvContainerOutOfMemory', 'EmuvAgentDown']);
    expect(state.EmuvSpillBudgetNearlyUsed.state).toBe('firing');
    expect(state.EmuvSpillBudgetNearlyUsed.alerts[0].labels).toMatchObject({ node: info.nodeName, severity: 'warning' });
    expect(state.EmuvContainerAtLimit.state).toBe('firing');
    expect(state.EmuvContainerAtLimit.alerts[0].labels).toMatchObject({ ...container, severity: 'info' });
    expect(state.EmuvContainerAtLimit.alerts[0].annotations.summary).toMatch(
      /^demo\/llm-0\/main uses 7\d(\.\d+)?% of its virtual GPU memory limit$/,
    );
    expect(state.EmuvContainerOutOfMemory.state).toBe('inactive');
    expect(state.EmuvAgentDown.state).toBe('inactive');
    // EmuvAgentDown stays quiet because its selector finds the agent's `up` series at 1, not because it finds none.
    const agentDown = /^(.+?)\s*==\s*0$/.exec(state.EmuvAgentDown.query as string);
    expect(agentDown, state.EmuvAgentDown.query).not.toBeNull();
    expect((await prom.query(agentDown![1]!)).map((x) => [x.metric.node, x.value])).toEqual([[info.nodeName, 1]]);

    await prom.stop();
    prometheus = undefined;
    for (const o of await list('servicemonitors'))
      await kube.json('DELETE', `/apis/monitoring.coreos.com/v1/namespaces/${NAMESPACE}/servicemonitors/${o.metadata.name}`);
    for (const o of await list('prometheusrules'))
      await kube.json('DELETE', `/apis/monitoring.coreos.com/v1/namespaces/${NAMESPACE}/prometheusrules/${o.metadata.name}`);
  });

  it('helm upgrade replaces the agent (a rolling update) without touching what it put on the node', async () => {
    const agentPods = async () =>
      ((await kube.get(`/api/v1/namespaces/${NAMESPACE}/pods?labelSelector=app.kubernetes.io/component%3Dagent`)).items as Json[]).map(
        (p) => p.metadata.name as string,
      );
    const before = await agentPods();
    const r = helm(info, [
      'upgrade',
      RELEASE,
      CHART_DIR,
      '-n',
      NAMESPACE,
      '--values',
      demo.valuesFile,
      '--set',
      'agent.logLevel=debug',
      '--wait',
      '--timeout',
      '3m',
    ]);
    expect(r.status, r.out).toBe(0);
    await waitFor('a new agent pod, ready', 120_000, async () => {
      const ds = await kube.get(`/apis/apps/v1/namespaces/${NAMESPACE}/daemonsets/emuv-agent`);
      const now = await agentPods();
      return now.length === 1 && !before.includes(now[0]!) && ds.status?.numberReady === 1 && ds.status?.updatedNumberScheduled === 1
        ? true
        : undefined;
    });
    // The old agent saw its DaemonSet still there at SIGTERM: node status, files and the running pod stay.
    for (const f of Object.values(LIBRARY_FILES)) expect(existsSync(path.join(demo.node.interposer, 'lib', f)), f).toBe(true);
    const n = await kube.node();
    expect(n.status.allocatable[VRAM_VIRTUAL]).toBe(String(EXPECTED_VIRTUAL));
    expect((await kube.pod(DEMO_NAMESPACE, DEMO_POD)).status.phase).toBe('Running');
    expect(readdirSync(demo.node.state).length).toBe(1);
  });

  it('with DRA on and the EmuvPolicy on DRA, the node publishes a ResourceSlice and the limits-style pod runs on a claim', async () => {
    const r = helm(info, [
      'upgrade',
      RELEASE,
      CHART_DIR,
      '-n',
      NAMESPACE,
      '--values',
      demo.valuesFile,
      '--set',
      'dra.enabled=true',
      '--set',
      'defaultPolicy.spec.allocation=DRA',
      '--wait',
      '--timeout',
      '3m',
    ]);
    expect(r.status, r.out).toBe(0);
    const slice = await waitFor("the node's ResourceSlice", 120_000, async () => {
      return (await nodeSlices(kube, info.nodeName))[0];
    });
    const [device] = slice.spec.devices as Json[];
    expect(device).toMatchObject({ name: 'gpu-0000-01-00-0', allowMultipleAllocations: true, capacity: { memory: { value: '32256Mi' } } });
    // The same pod as before, unchanged: the webhook turns its 28Gi limit into a claim on the DRA node.
    const w = await demo.runWorkload('DRA');
    const c = w.pod.spec.containers[0];
    expect(c.resources.limits?.[VRAM_VIRTUAL]).toBeUndefined();
    expect(c.resources.claims).toEqual([{ name: 'emuv-c0' }]);
    expect(w.pod.spec.resourceClaims).toEqual([{ name: 'emuv-c0', resourceClaimTemplateName: `emuv-vram-${28 * GiB}` }]);
    const claimName = (w.pod.status.resourceClaimStatuses as Json[])[0]!.resourceClaimName;
    const claim = await kube.get(`/apis/resource.k8s.io/v1/namespaces/${DEMO_NAMESPACE}/resourceclaims/${claimName}`);
    expect(claim.status.allocation.devices.results[0]).toMatchObject({ device: 'gpu-0000-01-00-0', consumedCapacity: { memory: '28Gi' } });
    // EMUV_LIMIT_BYTES came with the claim's CDI spec: the card the workload sees is the claim's 28 GiB.
    expect(w.log).toContain('card: cuMemGetInfo total 28.0 GiB free 28.0 GiB; cuDeviceTotalMem 28.0 GiB; NVML total 28.0 GiB');
    expect(w.log).toContain('allocated 20 x 1 GiB through cuMemAlloc');
    expect(w.log).toContain('data check on the last tensor: ok');
    expect(readdirSync(info.cdiDir)).toEqual([`emuv.io-vgpu-${claim.metadata.uid}.json`]);
    // The pool of the device-plugin path is withdrawn while the node is on DRA.
    expect((await kube.node()).status.allocatable[VRAM_VIRTUAL]).toBe('0');
  });

  it('helm uninstall leaves nothing of emuv on the node or in node status', async () => {
    await demo.uninstall();
    installed = false;
    // The kubelet keeps every device-plugin resource it ever registered, at zero (its rule, see docs/agent.md);
    // the agent's empty device list reaches node status with the kubelet's next status update.
    const n = await waitFor('emuv.io/vgpu at zero in node status', 60_000, async () => {
      const node = await kube.node();
      return ['capacity', 'allocatable'].every((f) => (node.status[f][VGPU] ?? '0') === '0') ? node : undefined;
    });
    for (const f of ['capacity', 'allocatable']) expect(n.status[f][VRAM_VIRTUAL], `status.${f}`).toBeUndefined();
    expect(Object.keys(n.metadata.labels ?? {}).filter((k) => k.startsWith('emuv.io/'))).toEqual([]);
    expect(Object.keys(n.metadata.annotations ?? {}).filter((k) => k.startsWith('emuv.io/'))).toEqual([]);
    const emuvNodes = await kube.get('/apis/emuv.io/v1alpha1/emuvnodes');
    expect(emuvNodes.items).toEqual([]);
    expect(readdirSync(demo.node.interposer)).toEqual([]);
    expect(readdirSync(demo.node.state)).toEqual([]);
    expect(readdirSync(DEVICE_PLUGIN_DIR).filter((f) => f.startsWith('emuv'))).toEqual([]);
    // DRA: no slice, no CDI spec, no kubelet plugin sockets.
    const slices = await kube.get(`/apis/resource.k8s.io/v1/resourceslices?fieldSelector=spec.driver%3D${DRA_DRIVER}`);
    expect(slices.items).toEqual([]);
    expect(readdirSync(info.cdiDir)).toEqual([]);
    expect(readdirSync(info.kubeletRegistryDir).filter((f) => f.startsWith(DRA_DRIVER))).toEqual([]);
    const mwc = await kube.get('/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations');
    expect((mwc.items as Json[]).map((x) => x.metadata.name).filter((x) => x.startsWith('emuv'))).toEqual([]);
  });
});

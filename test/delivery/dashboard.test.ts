/**
 * The Grafana dashboard (deploy/grafana/emuv-dashboard.json) only queries metrics that emuv exports:
 * every emuv_* name in its expressions must be registered by the agent or the operator. The chart's copy
 * (helm/emuv/files/, for the optional ConfigMap: Helm's .Files sees only files inside the chart) is the
 * same file.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createOperatorMetrics } from '../../operator/metrics.ts';
import { createAgentMetrics } from '../../plugin/metrics/definitions.ts';
import { REPO_ROOT } from '../../localcluster/repo.ts';

describe('Grafana dashboard', () => {
  it('queries only metrics the agent and the operator register', async () => {
    const dashboard = JSON.parse(readFileSync(join(REPO_ROOT, 'deploy/grafana/emuv-dashboard.json'), 'utf8')) as {
      panels: { targets: { expr: string }[] }[];
    };
    const used = new Set(
      dashboard.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/\bemuv_[a-z_]+/g)].map((m) => m[0]))),
    );
    const agent = new Registry();
    createAgentMetrics(agent);
    const operator = new Registry();
    createOperatorMetrics(operator);
    const names = new Set([...(await agent.getMetricsAsJSON()), ...(await operator.getMetricsAsJSON())].map((m) => m.name));
    // Histograms are queried through their _bucket series.
    const missing = [...used].filter((n) => !names.has(n) && !names.has(n.replace(/_bucket$/, '')));
    expect(used.size).toBeGreaterThan(15);
    expect(missing).toEqual([]);
  });

  it('the chart carries deploy/grafana/emuv-dashboard.json byte for byte (helm/emuv/files/emuv-dashboard.json)', () => {
    const documented = readFileSync(join(REPO_ROOT, 'deploy/grafana/emuv-dashboard.json'));
    const chart = readFileSync(join(REPO_ROOT, 'helm/emuv/files/emuv-dashboard.json'));
    // Edit deploy/grafana/emuv-dashboard.json, then: cp deploy/grafana/emuv-dashboard.json helm/emuv/files/
    expect(chart.equals(documented), 'helm/emuv/files/emuv-dashboard.json differs from deploy/grafana/emuv-dashboard.json').toBe(true);
  });
});

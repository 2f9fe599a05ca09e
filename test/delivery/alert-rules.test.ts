// The chart's alert rules (prometheusRule.enabled), rendered by the real Helm CLI and checked by the real
// promtool (built by localcluster/cluster/build.sh from Prometheus's Go module): the rules load, query only
// metrics emuv registers, and pass their unit tests (test/prometheus/rules.test.yaml), which fail when a
// threshold moves.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO_ROOT, tempDir } from '../../localcluster/repo.ts';
import { createAgentMetrics } from '../../plugin/metrics/definitions.ts';

/** A pinned binary of build.sh, found like the chart tests find Helm (build.sh --print-dir). */
function built(key: string, name: string): string {
  const r = spawnSync('bash', [join(REPO_ROOT, 'localcluster/cluster/build.sh'), '--print-dir'], { encoding: 'utf8' });
  const dir = new RegExp(`^${key}=(.+)$`, 'm').exec(r.stdout ?? '')?.[1];
  const bin = dir ? join(dir, name) : undefined;
  if (!bin || !existsSync(bin))
    throw new Error(
      `${name} not found${bin ? ` at ${bin}` : ''}: build it with: bash localcluster/cluster/build.sh (CI runs it before the tests)`,
    );
  return bin;
}

const helm = built('HELM_BIN', 'helm');
const promtool = built('PROMETHEUS_BIN', 'promtool');
const tmp = tempDir('emuv-alert-rules-');
afterAll(() => tmp.cleanup());

interface Rule {
  alert: string;
  expr: string;
}

/** The PrometheusRule's groups as a Prometheus rule file, in a directory of its own with the unit tests beside it. */
function renderRules(dir: string, extra: string[] = []): { groups: { rules: Rule[] }[] } {
  const r = spawnSync(
    helm,
    ['template', 'emuv', join(REPO_ROOT, 'helm/emuv'), '-n', 'emuv-system', '--set', 'prometheusRule.enabled=true', ...extra],
    { encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: join(tmp.path, 'helm'), HELM_CONFIG_HOME: join(tmp.path, 'helm') } },
  );
  expect(r.status, r.stderr).toBe(0);
  const rule = r.stdout
    .split(/^---$/m)
    .map((d) => parse(d) as { kind?: string; spec?: { groups: { rules: Rule[] }[] } } | null)
    .find((d) => d?.kind === 'PrometheusRule');
  expect(rule, 'a PrometheusRule in the rendered chart').toBeDefined();
  writeFileSync(join(dir, 'rules.yaml'), JSON.stringify(rule!.spec));
  copyFileSync(join(REPO_ROOT, 'test/prometheus/rules.test.yaml'), join(dir, 'rules.test.yaml'));
  return rule!.spec!;
}

const promtoolRun = (dir: string, ...args: string[]) => spawnSync(promtool, args, { cwd: dir, encoding: 'utf8' });

describe('alert rules (prometheusRule.enabled)', () => {
  const dir = join(tmp.path, 'defaults');

  it('load in promtool and query only metrics emuv registers (and up)', async () => {
    spawnSync('mkdir', ['-p', dir]);
    const spec = renderRules(dir);
    const check = promtoolRun(dir, 'check', 'rules', 'rules.yaml');
    expect(check.status, check.stdout + check.stderr).toBe(0);
    const rules = spec.groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert)).toEqual([
      'EmuvSpillBudgetNearlyUsed',
      'EmuvContainerAtLimit',
      'EmuvContainerOutOfMemory',
      'EmuvAgentDown',
    ]);
    const registry = new Registry();
    createAgentMetrics(registry);
    const names = new Set((await registry.getMetricsAsJSON()).map((m) => m.name));
    const used = rules.flatMap((r) => [...r.expr.matchAll(/\bemuv_[a-z_]+/g)].map((m) => m[0]));
    expect(used.filter((n) => !names.has(n))).toEqual([]);
  });

  it('pass their unit tests (promtool test rules): each fires when it should and not otherwise', () => {
    const t = promtoolRun(dir, 'test', 'rules', 'rules.test.yaml');
    expect(t.status, t.stdout + t.stderr).toBe(0);
    expect(t.stdout).toContain('SUCCESS');
  });

  it('the unit tests fail when a threshold moves (they test the rendered values)', () => {
    const moved = join(tmp.path, 'moved');
    spawnSync('mkdir', ['-p', moved]);
    renderRules(moved, ['--set-json', 'prometheusRule.containerLimitFraction=0.99']);
    const t = promtoolRun(moved, 'test', 'rules', 'rules.test.yaml');
    expect(t.status).not.toBe(0);
    expect(t.stdout + t.stderr).toMatch(/EmuvContainerAtLimit/);
  });
});

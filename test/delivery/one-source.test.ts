/**
 * Values that several delivery files must agree on, checked against one source each.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { AGENT_NODE_FLAGS } from '../../bench/agent-flags.ts';
import { LIBRARY_FILES } from '../../common/contracts/interposer.ts';
import { REPO_ROOT } from '../helpers.ts';

const read = (p: string) => readFileSync(join(REPO_ROOT, p), 'utf8');

describe('delivery files agree', () => {
  it('the agent runs with the V8 flags the benchmark measured: Dockerfile and chart', () => {
    const flags = AGENT_NODE_FLAGS.join(' ');
    expect(read('Dockerfile')).toContain(`ENV NODE_OPTIONS="${flags}"`);
    expect((parse(read('helm/emuv/values.yaml')) as { agent: { nodeOptions: string } }).agent.nodeOptions).toBe(flags);
  });

  it('the image carries the bundle, koffi and the interposer libraries the agent installs from', () => {
    const dockerfile = read('Dockerfile');
    expect(dockerfile).toContain('COPY --from=js /src/dist/ dist/');
    expect(dockerfile).toContain('node_modules/koffi/');
    expect(dockerfile).toContain('COPY --from=native /src/native/build/lib/ native/build/lib/');
    expect(read('helm/emuv/templates/agent-daemonset.yaml')).toContain('{ name: EMUV_INTERPOSER_SOURCE, value: /app/native/build/lib }');
    expect(Object.values(LIBRARY_FILES)).toEqual(['libemuv-cuda.so', 'libemuv-nvml.so']);
  });

  it('the chart version and the package version are the same release', () => {
    const chart = parse(read('helm/emuv/Chart.yaml')) as { appVersion: string };
    expect(chart.appVersion).toBe((JSON.parse(read('package.json')) as { version: string }).version);
  });
});

/**
 * Values that several delivery files must agree on, checked against one source each.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { AGENT_NODE_FLAGS } from '../../bench/agent-flags.ts';
import { LIBRARY_FILES } from '../../common/contracts/interposer.ts';
import { dockerfileEntrypoint, NODE_BIN, REPO_ROOT } from '../../localcluster/index.ts';

const read = (p: string) => readFileSync(join(REPO_ROOT, p), 'utf8');

describe('delivery files agree', () => {
  it('the agent runs with the V8 flags the benchmark measured: Dockerfile and chart, on the command line', () => {
    expect(dockerfileEntrypoint(read('Dockerfile'))).toEqual(['node', ...AGENT_NODE_FLAGS, '/app/dist/emuv.mjs']);
    expect((parse(read('helm/emuv/values.yaml')) as { agent: { nodeArgs: string[] } }).agent.nodeArgs).toEqual(AGENT_NODE_FLAGS);
    // Node accepts them there; NODE_OPTIONS would refuse --lite-mode, which is why neither file uses it.
    expect(spawnSync(NODE_BIN, [...AGENT_NODE_FLAGS, '-e', '0']).status).toBe(0);
    const viaEnv = spawnSync(NODE_BIN, ['-e', '0'], {
      env: { ...process.env, NODE_OPTIONS: AGENT_NODE_FLAGS.join(' ') },
      encoding: 'utf8',
    });
    expect(viaEnv.stderr).toContain('--lite-mode is not allowed in NODE_OPTIONS');
  });

  it('the image carries the bundle, koffi and the interposer libraries the agent installs from', () => {
    const dockerfile = read('Dockerfile');
    expect(dockerfile).toContain('COPY --from=js /src/dist/ dist/');
    expect(dockerfile).toContain('node_modules/koffi/');
    expect(dockerfile).toContain('COPY --from=native /src/native/build/lib/ native/build/lib/');
    expect(read('helm/emuv/templates/agent-daemonset.yaml')).toContain(
      '{ name: EMUV_AGENT_INTERPOSER_SOURCE, value: /app/native/build/lib }',
    );
    expect(Object.values(LIBRARY_FILES)).toEqual(['libemuv-cuda.so', 'libemuv-nvml.so']);
  });

  it('the chart version and the package version are the same release', () => {
    const chart = parse(read('helm/emuv/Chart.yaml')) as { appVersion: string };
    expect(chart.appVersion).toBe((JSON.parse(read('package.json')) as { version: string }).version);
  });
});

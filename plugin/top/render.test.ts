import { describe, expect, it } from 'vitest';
import type { ContainerUsage } from '../usage/collector.ts';
import type { StatusDocument } from '../usage/status.ts';
import { bar, renderTop, sortContainers } from './render.ts';

const G = 2 ** 30;
const container = (over: Partial<ContainerUsage>): ContainerUsage => ({
  allocId: 'gpu-0000-01-00-0-s00',
  owner: { namespace: 'team-a', pod: 'llm-0', container: 'server' },
  gpu: 'GPU-4f1e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b',
  limitBytes: 28 * G,
  vramShareBytes: 7.5 * G,
  vramUsedBytes: 7.25 * G,
  hostUsedBytes: 12.75 * G,
  vramPeakBytes: 7.5 * G,
  hostPeakBytes: 13 * G,
  spillEvents: 143,
  oomEvents: 0,
  deniedRetries: 1,
  processes: 1,
  processesUnverified: 0,
  exitedProcesses: 0,
  exitedHeldBytes: 0,
  error: null,
  ...over,
});

const doc: StatusDocument = {
  apiVersion: 'emuv.io/status/v1',
  node: 'gpu-node-1',
  time: '2026-11-27T16:00:00.000Z',
  gpus: [
    {
      address: '0000:01:00.0',
      name: 'NVIDIA GeForce RTX 4060',
      uuid: 'GPU-4f1e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b',
      vramBytes: 8 * G,
      usableVramBytes: 7.5 * G,
      slots: 16,
      healthy: true,
      reason: null,
      vramUsedBytes: 7.25 * G,
      hostUsedBytes: 12.75 * G,
      committedBytes: 32 * G,
    },
  ],
  capacity: { vramVirtualBytes: 23.5 * G, vgpu: 16, hostBudgetBytes: 16 * G, hostUsedBytes: 12.75 * G, committedBytes: 32 * G },
  containers: [
    container({}),
    container({
      allocId: 'gpu-0000-01-00-0-s01',
      owner: { namespace: 'team-b', pod: 'notebook-7f9c', container: 'jupyter' },
      limitBytes: 4 * G,
      vramUsedBytes: 0.5 * G,
      hostUsedBytes: 0,
      vramPeakBytes: G,
      hostPeakBytes: 0,
      spillEvents: 0,
    }),
    container({ allocId: 'gpu-0000-01-00-0-s02', owner: null, error: 'stats file too short: 16 bytes' }),
  ],
};

describe('emuv top rendering', () => {
  it('renders GPUs, node capacity and containers (snapshot)', async () => {
    await expect(renderTop(doc, { width: 100 }).join('\n') + '\n').toMatchFileSnapshot('__snapshots__/top-100.txt');
  });

  it('sorts by the chosen key, then by name', () => {
    expect(sortContainers(doc.containers, 'vram').map((c) => c.allocId)).toEqual([
      'gpu-0000-01-00-0-s00',
      'gpu-0000-01-00-0-s01',
      'gpu-0000-01-00-0-s02',
    ]);
    expect(sortContainers(doc.containers, 'name').map((c) => c.owner?.pod ?? null)).toEqual(['llm-0', 'notebook-7f9c', null]);
  });

  it('never draws past the terminal width and clamps bars', () => {
    expect(renderTop(doc, { width: 80 }).every((l) => l.length <= 80)).toBe(true);
    expect(bar(30, 10, 10)).toBe('[##########]');
    expect(bar(5, 0, 4)).toBe('[....]');
  });

  it('says what exited processes of a container still hold, under its row', () => {
    const lines = renderTop({ ...doc, containers: [container({ processes: 1, exitedProcesses: 2, exitedHeldBytes: 3 * G })] });
    const row = lines.findIndex((l) => l.startsWith('team-a/llm-0/server'));
    expect(lines[row + 1]).toBe("  2 exited processes still counted (3.0G) until the container's next CUDA process releases them");
  });

  it('says so when no container has started', () => {
    expect(renderTop({ ...doc, containers: [] }).join('\n')).toContain('(no emuv container has started a CUDA process on this node)');
  });
});

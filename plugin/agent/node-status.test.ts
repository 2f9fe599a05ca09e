/**
 * The node-status publisher against an HTTP server standing in for the kube-apiserver
 * (test/fakes/agent-apiserver.ts), which records the content type and JSON patch of every request.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nopLogger } from '../../common/log.ts';
import { waitUntil } from '../../test/helpers.ts';
import { createNodeApi } from './kube-node-api.ts';
import { AgentApiServer } from '../../test/fakes/agent-apiserver.ts';
import { labelPatch, NodeStatusPublisher, sanitizeLabelValue, statusPatch } from './node-status.ts';

let api: AgentApiServer;
let publisher: NodeStatusPublisher | null;

beforeEach(async () => {
  api = new AgentApiServer();
  await api.start();
  publisher = null;
});
afterEach(async () => {
  publisher?.stop();
  await api.stop();
});

function newPublisher(resyncMs = 50) {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${api.port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'c', cluster: 'fake', user: 'u' }],
    currentContext: 'c',
  });
  publisher = new NodeStatusPublisher({ nodeName: 'gpu-node-1', api: createNodeApi(kc), logger: nopLogger, resyncMs });
  return publisher;
}

// What the agent publishes for the one-gpu fixture: an 8 GiB card less the 512 MiB reserve, plus the auto
// spill budget min(50 % of 32 GiB MemTotal, 32 GiB - 8 GiB) = 16 GiB.
const VRAM_VIRTUAL = 8 * 2 ** 30 - 512 * 2 ** 20 + 16 * 2 ** 30;
const desired = { vramVirtualBytes: VRAM_VIRTUAL, labels: { 'emuv.io/gpu.count': '1', 'emuv.io/gpu.product': 'NVIDIA-GeForce-RTX-4060' } };

describe('node status publisher over HTTP', () => {
  it('JSON-patches capacity and allocatable on /status and the labels on the Node', async () => {
    await newPublisher().publish(desired);
    const patches = api.requests.filter((r) => r.method === 'PATCH');
    expect(patches).toEqual([
      {
        method: 'PATCH',
        path: '/api/v1/nodes/gpu-node-1/status',
        contentType: 'application/json-patch+json',
        body: [
          { op: 'add', path: '/status/capacity/emuv.io~1vram-virtual', value: String(VRAM_VIRTUAL) },
          { op: 'add', path: '/status/allocatable/emuv.io~1vram-virtual', value: String(VRAM_VIRTUAL) },
        ],
      },
      {
        method: 'PATCH',
        path: '/api/v1/nodes/gpu-node-1',
        contentType: 'application/json-patch+json',
        body: [
          { op: 'add', path: '/metadata/labels/emuv.io~1gpu.count', value: '1' },
          { op: 'add', path: '/metadata/labels/emuv.io~1gpu.product', value: 'NVIDIA-GeForce-RTX-4060' },
        ],
      },
    ]);
    expect(api.node.status!.capacity).toEqual({ cpu: '8', memory: '32Gi', 'emuv.io/vram-virtual': String(VRAM_VIRTUAL) });
    expect(publisher!.healthy).toBe(true);
  });

  it('patches nothing when the Node already agrees', async () => {
    const p = newPublisher();
    await p.publish(desired);
    api.requests = [];
    await p.run();
    expect(api.requests.map((r) => r.method)).toEqual(['GET']);
  });

  it('re-asserts the value after the kubelet zeroes it or the key vanishes', async () => {
    const p = newPublisher(50);
    await p.publish(desired);
    p.start();
    api.node.status!.capacity!['emuv.io/vram-virtual'] = '0';
    api.node.status!.allocatable!['emuv.io/vram-virtual'] = '0';
    await waitUntil(() => api.node.status!.capacity!['emuv.io/vram-virtual'] === String(VRAM_VIRTUAL), 2000, 're-assert after zeroing');
    delete api.node.status!.capacity!['emuv.io/vram-virtual'];
    delete api.node.status!.allocatable!['emuv.io/vram-virtual'];
    await waitUntil(() => api.node.status!.allocatable!['emuv.io/vram-virtual'] === String(VRAM_VIRTUAL), 2000, 're-assert after removal');
  });

  it('survives API errors and succeeds on the next pass', async () => {
    const p = newPublisher(50);
    api.failNext = 1;
    await p.publish(desired);
    expect(p.healthy).toBe(false);
    p.start();
    await waitUntil(() => p.healthy, 2000, 'recovery');
    expect(api.node.status!.capacity!['emuv.io/vram-virtual']).toBe(String(VRAM_VIRTUAL));
  });
});

describe('patch builders', () => {
  it('adds whole maps when the Node has none', () => {
    expect(statusPatch({ status: {} }, desired)).toEqual([
      { op: 'add', path: '/status/capacity', value: { 'emuv.io/vram-virtual': String(VRAM_VIRTUAL) } },
      { op: 'add', path: '/status/allocatable', value: { 'emuv.io/vram-virtual': String(VRAM_VIRTUAL) } },
    ]);
    expect(labelPatch({ metadata: {} }, desired)).toEqual([{ op: 'add', path: '/metadata/labels', value: desired.labels }]);
  });

  it('removes a stale product label when no GPU is offered any more', () => {
    const node = { metadata: { labels: { 'emuv.io/gpu.count': '1', 'emuv.io/gpu.product': 'X' } } };
    expect(labelPatch(node, { vramVirtualBytes: 0, labels: { 'emuv.io/gpu.count': '0' } })).toEqual([
      { op: 'remove', path: '/metadata/labels/emuv.io~1gpu.product' },
      { op: 'add', path: '/metadata/labels/emuv.io~1gpu.count', value: '0' },
    ]);
  });

  it.each([
    ['NVIDIA GeForce RTX 4060', 'NVIDIA-GeForce-RTX-4060'],
    ['NVIDIA H100 80GB HBM3', 'NVIDIA-H100-80GB-HBM3'],
    ['  (weird) name!  ', 'weird-name'],
    ['x'.repeat(80), 'x'.repeat(63)],
  ])('sanitises %j to a label value', (input, expected) => {
    expect(sanitizeLabelValue(input)).toBe(expected);
  });
});

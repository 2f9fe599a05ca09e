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

const desired = { vramVirtualBytes: 25232932864, labels: { 'emuv.io/gpu.count': '1', 'emuv.io/gpu.product': 'NVIDIA-GeForce-RTX-4060' } };

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
          { op: 'add', path: '/status/capacity/emuv.io~1vram-virtual', value: '25232932864' },
          { op: 'add', path: '/status/allocatable/emuv.io~1vram-virtual', value: '25232932864' },
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
    expect(api.node.status!.capacity).toEqual({ cpu: '8', memory: '32Gi', 'emuv.io/vram-virtual': '25232932864' });
    expect(publisher!.healthy).toBe(true);
  });

  it('patches nothing when the Node already agrees', async () => {
    const p = newPublisher();
    await p.publish(desired);
    api.requests = [];
    await p.reconcile();
    expect(api.requests.map((r) => r.method)).toEqual(['GET']);
  });

  it('re-asserts the value after the kubelet zeroes it or the key vanishes', async () => {
    const p = newPublisher(50);
    await p.publish(desired);
    p.start();
    api.node.status!.capacity!['emuv.io/vram-virtual'] = '0';
    api.node.status!.allocatable!['emuv.io/vram-virtual'] = '0';
    await waitUntil(() => api.node.status!.capacity!['emuv.io/vram-virtual'] === '25232932864', 2000, 're-assert after zeroing');
    delete api.node.status!.capacity!['emuv.io/vram-virtual'];
    delete api.node.status!.allocatable!['emuv.io/vram-virtual'];
    await waitUntil(() => api.node.status!.allocatable!['emuv.io/vram-virtual'] === '25232932864', 2000, 're-assert after removal');
  });

  it('survives API errors and succeeds on the next pass', async () => {
    const p = newPublisher(50);
    api.failNext = 1;
    await p.publish(desired);
    expect(p.healthy).toBe(false);
    p.start();
    await waitUntil(() => p.healthy, 2000, 'recovery');
    expect(api.node.status!.capacity!['emuv.io/vram-virtual']).toBe('25232932864');
  });
});

describe('patch builders', () => {
  it('adds whole maps when the Node has none', () => {
    expect(statusPatch({ status: {} }, desired)).toEqual([
      { op: 'add', path: '/status/capacity', value: { 'emuv.io/vram-virtual': '25232932864' } },
      { op: 'add', path: '/status/allocatable', value: { 'emuv.io/vram-virtual': '25232932864' } },
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

// A platform assumption emuv is built on, checked against the real kube-scheduler and kubelet (no emuv code
// runs here): the default scheduler packs pods by bytes of a node-level extended resource such as
// emuv.io/vram-virtual, published in the Node's status next to what the kubelet reports, and the kubelet's
// own status updates keep a key it does not own. If a Kubernetes release changed this, emuv's resource
// model (README: "Two resources") would need another way to reach the scheduler.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapePointer } from '../../common/kube/json-patch.ts';
import { Kube, KubeError, loadCluster, waitFor, type Json } from '../../localcluster/index.ts';
import { probePod } from './pods.ts';

const NS = 'emuv-sched';
const RESOURCE = 'emuv.io/vram-virtual';
const POINTER = escapePointer(RESOURCE);

describe('scheduler packs pods by bytes of emuv.io/vram-virtual', () => {
  const info = loadCluster();
  const kube = new Kube(info);

  beforeAll(async () => {
    await kube.ensureNamespace(NS);
  });

  afterAll(async () => {
    await kube.deleteNamespace(NS);
    const node = await kube.node();
    const ops = ['capacity', 'allocatable']
      .filter((f) => node.status?.[f]?.[RESOURCE] !== undefined)
      .map((f) => ({ op: 'remove', path: `/status/${f}/${POINTER}` }));
    if (ops.length > 0) await kube.patchNodeStatus(ops);
    kube.close();
  });

  it('runs two 12Gi pods on a 28Gi node and leaves the third Pending with Insufficient emuv.io/vram-virtual', async () => {
    await kube.patchNodeStatus([
      { op: 'add', path: `/status/capacity/${POINTER}`, value: '28Gi' },
      { op: 'add', path: `/status/allocatable/${POINTER}`, value: '28Gi' },
    ]);
    const node = await kube.node();
    expect(node.status.capacity[RESOURCE]).toBe('28Gi');
    expect(node.status.allocatable[RESOURCE]).toBe('28Gi');
    // The kubelet's own status updates (every 10 s here) keep a capacity key it does not own.
    await new Promise((r) => setTimeout(r, 11_000));
    expect((await kube.node()).status.allocatable[RESOURCE]).toBe('28Gi');

    const names = ['bytes-a', 'bytes-b', 'bytes-c'];
    for (const name of names) await kube.createPod(NS, probePod({ name, limits: { [RESOURCE]: '12Gi' } }));

    const settled = await waitFor(
      'two pods Running and one unschedulable',
      120_000,
      async () => {
        const pods = await Promise.all(names.map((n) => kube.pod(NS, n)));
        const running = pods.filter((p) => p.status?.phase === 'Running');
        const unschedulable = pods.filter((p) =>
          (p.status?.conditions ?? []).some((c: Json) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable'),
        );
        return running.length === 2 && unschedulable.length === 1 ? { running, pending: unschedulable[0] } : undefined;
      },
      1_000,
    );

    for (const p of settled.running) {
      expect(p.spec.nodeName).toBe(info.nodeName);
      expect(p.status.containerStatuses[0].ready).toBe(true);
    }
    const pending = settled.pending;
    expect(pending.status.phase).toBe('Pending');
    expect(pending.spec.nodeName).toBeUndefined();
    const cond = pending.status.conditions.find((c: Json) => c.type === 'PodScheduled');
    expect(cond.message).toContain(`Insufficient ${RESOURCE}`);

    // Accounting is in bytes: 28Gi - 2 x 12Gi leaves exactly 4Gi, so a 4Gi pod still fits while the 12Gi
    // one stays Pending.
    await kube.createPod(NS, probePod({ name: 'bytes-4gi', limits: { [RESOURCE]: '4Gi' } }));
    await kube.waitPodPhase(NS, 'bytes-4gi', 'Running');
    const again = await kube.pod(NS, pending.metadata.name);
    expect(again.status.phase).toBe('Pending');
    expect(again.spec.nodeName).toBeUndefined();
  });

  it('rejects a non-integer byte quantity at the API (extended resources are integers)', async () => {
    const bad = probePod({ name: 'bytes-bad', limits: { [RESOURCE]: '1.5' } });
    const err = await kube.createPod(NS, bad).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KubeError);
    expect((err as KubeError).status).toBe(422);
    expect((err as KubeError).body).toContain('must be an integer');
  });
});

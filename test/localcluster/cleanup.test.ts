// The cluster harness stops a crashed run's leftovers by their command lines (cleanupStale): only processes
// that name the run directory as a path, never a neighbour that shares its prefix (seen: a `flock` on
// /tmp/emuv-cluster-session.lock, waiting to run the cluster tests, was killed by the run it waited for).
import { describe, expect, it } from 'vitest';
import { namesDir } from '../../localcluster/cluster/cleanup.ts';

describe('cleanupStale: which command lines belong to the run directory', () => {
  const dir = '/tmp/emuv-cluster';
  it.each([
    ['etcd --data-dir=/tmp/emuv-cluster/etcd', true],
    ['containerd --config /tmp/emuv-cluster/containerd/config.toml', true],
    ['sh -c cd /tmp/emuv-cluster', true],
    ['kubelet --root-dir /tmp/emuv-cluster/kubelet --config=/tmp/emuv-cluster/kubelet.yaml', true],
    ['flock /tmp/emuv-cluster-session.lock npx vitest run --project cluster', false],
    ['tail -f /tmp/emuv-cluster-logs/kubelet.log', false],
    ['cat /tmp/emuv-cluster.json', false],
    ['cat /srv/tmp/emuv-cluster/x', false],
  ])('%s -> %s', (cmd, expected) => {
    expect(namesDir(cmd, dir)).toBe(expected);
    expect(namesDir(cmd, `${dir}/`)).toBe(expected);
  });
});

// The command-line tools pointed at this cluster, all as build.sh builds them: ctr on the node's containerd
// (image import; the ctr of the same containerd build, not the host's), and the pinned kubectl and helm, with the
// admin kubeconfig and a helm home of their own.
import path from 'node:path';
import type { ClusterInfo } from './layout.ts';
import { capture, run, type Captured } from './process.ts';

/** ctr on the node's containerd, in the namespace the kubelet's CRI uses. */
const ctr = (info: ClusterInfo) => path.join(info.bin.containerd, 'ctr');
const ctrArgs = (info: ClusterInfo) => ['--address', `${info.paths.containerd}/containerd.sock`, '-n', 'k8s.io'];

export function ctrAnswers(info: ClusterInfo): boolean {
  return capture(ctr(info), [...ctrArgs(info), 'version']).status === 0;
}

/** Imports OCI archives into the node's containerd (unpacked, as the kubelet needs) and checks that `names` arrived. */
export function importImages(info: ClusterInfo, archives: string[], names: string[]): void {
  for (const a of archives) run(ctr(info), [...ctrArgs(info), 'images', 'import', '--no-unpack=false', a]);
  const images = run(ctr(info), [...ctrArgs(info), 'images', 'ls', '-q']);
  for (const img of names) {
    if (!images.split('\n').includes(img)) throw new Error(`image ${img} missing after import; have: ${images}`);
  }
}

export function kubectl(info: ClusterInfo, args: string[]): Captured {
  return capture(path.join(info.bin.kubernetes, 'kubectl'), args, { ...process.env, KUBECONFIG: info.kubeconfig });
}

/** helm with its cache, config and data under `home` (default <run dir>/helm), never the user's. */
export function helm(info: ClusterInfo, args: string[], home = path.join(info.paths.runDir, 'helm')): Captured {
  return capture(path.join(info.bin.helm, 'helm'), args, {
    ...process.env,
    KUBECONFIG: info.kubeconfig,
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_DATA_HOME: path.join(home, 'data'),
  });
}

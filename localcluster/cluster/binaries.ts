// The build: kube-apiserver, kube-scheduler, kube-controller-manager, kubelet, kubectl, etcd, helm, containerd
// (with its runc shim and ctr) and runc, built
// from upstream Go modules by build.sh at the versions pinned in build/versions.env and cached by version
// under the cache directory. This file only asks build.sh; the build itself is the script (CI runs it alone).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { paths, type Binaries } from './layout.ts';

const BUILD_SH = path.join(import.meta.dirname, 'build.sh');
const VERSIONS = path.join(import.meta.dirname, 'build/versions.env');

/** The pinned versions (KUBERNETES_VERSION, ETCD_VERSION, HELM_VERSION, CONTAINERD_VERSION, RUNC_VERSION, ...). */
export function readVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(VERSIONS, 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(\S+)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** Runs build.sh (which returns at once when every binary is cached) and returns the binary directories. */
export function ensureBinaries(opts: { build: boolean }): Binaries {
  if (opts.build) {
    const r = spawnSync('bash', [BUILD_SH], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) {
      throw new Error(
        `cluster layer: localcluster/cluster/build.sh failed (exit ${r.status}). It needs Go >= 1.21 (it fetches a newer toolchain itself), the Go module proxy and libseccomp-dev; ` +
          `run it by hand to see why: localcluster/cluster/build.sh`,
      );
    }
  }
  const r = spawnSync('bash', [BUILD_SH, '--print-dir'], { encoding: 'utf8' });
  const dirs = Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('=') as [string, string]),
  );
  if (r.status !== 0) {
    throw new Error(`cluster layer: binaries missing under ${paths().cacheDir}/bin; run localcluster/cluster/build.sh first`);
  }
  return {
    kubernetes: dirs.KUBERNETES_BIN!,
    etcd: dirs.ETCD_BIN!,
    helm: dirs.HELM_BIN!,
    containerd: dirs.CONTAINERD_BIN!,
    runc: dirs.RUNC_BIN!,
  };
}

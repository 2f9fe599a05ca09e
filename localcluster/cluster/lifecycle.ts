// A real single-node Kubernetes on this machine, for tests and demos: etcd, kube-apiserver, kube-scheduler,
// kube-controller-manager, containerd (+ runc) and a kubelet, all built from upstream sources by build.sh (no
// Docker, no downloaded binaries). This file starts, stops and finds the cluster; each stage it runs is a file here:
//
//   startCluster()
//     host.ts       prepareHost        root, CNI plugins, libseccomp, tools present (else setup-host.sh, apt-get)
//     binaries.ts   ensureBinaries     build.sh -> Binaries (cached by version under ~/.cache/emuv/bin)
//     host.ts       claimMachine       one cluster per machine (/run/emuv-test-cluster.owner)
//     cleanup.ts    cleanupStale       whatever an earlier run of this run directory left behind
//     layout.ts     paths              Paths: the run directory (EMUV_RUN_DIR, default /tmp/emuv-cluster) and logs
//     pki.ts        makePki            Paths.certs: CA, certificates, kubeconfigs
//     plumbing.ts   setupNetwork ...   network namespace + veth, cgroup root, device-plugin bind mount
//     configs.ts    daemonSpecs        Paths + Binaries -> every daemon's command line
//                   -> ClusterInfo, written to <run dir>/cluster.json (the only state; see below)
//     daemons.ts    startDaemon        etcd, kube-apiserver (kube.ts: /readyz), scheduler, controller-manager
//     configs.ts    writeNodeConfigs   containerd, CNI and kubelet configuration files
//     images/       buildNodeImages    pause and probe images -> tools.ts importImages into containerd
//     daemons.ts    startDaemon        containerd, then the kubelet; waitNodeReady
//   loadCluster()   cluster.json -> ClusterInfo, in any process (test workers, the demo's `down`)
//   stopCluster()   pods deleted through the kubelet, daemons stopped, then cleanupStale
//
// Network. The components run in a network namespace `emuv-cluster`: etcd and the control plane listen on its
// loopback; a veth pair gives the node a non-loopback address (NODE_IP) that the test process on the host
// reaches (HOST_IP is the host end).
//
// State. Nothing is kept in memory: pid files, the command line of every daemon and the cluster facts are files
// in the run directory, so a test worker can restart the kubelet that the vitest global setup started, and a
// later run can clean up after a crashed one (cleanup.ts).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildNodeImages, NODE_IMAGES } from '../images/node-images.ts';
import { ensureBinaries, readVersions } from './binaries.ts';
import { cgroupPids, cleanupStale, recordNetns } from './cleanup.ts';
import { daemonSpecs, writeNodeConfigs } from './configs.ts';
import { daemonPid, logTail, startDaemon, stopDaemon, waitDaemon } from './daemons.ts';
import { claimMachine, prepareHost, releaseMachine } from './host.ts';
import { Kube, KubeError, type Json } from './kube.ts';
import {
  APISERVER_PORT,
  DEVICE_PLUGIN_DIR,
  NETNS,
  NODE_IP,
  NODE_NAME,
  cdiDir,
  cniConfDir,
  devicePluginSource,
  paths,
  type Binaries,
  type ClusterInfo,
  type Paths,
} from './layout.ts';
import { adminFiles, makePki } from './pki.ts';
import { mountDevicePluginDir, setupCgroupRoot, setupNetwork } from './plumbing.ts';
import { waitFor } from './process.ts';
import { ctrAnswers, importImages } from './tools.ts';

type Log = (s: string) => void;

export function loadCluster(p: Paths = paths()): ClusterInfo {
  if (!existsSync(p.clusterFile)) {
    throw new Error(`no cluster running (missing ${p.clusterFile}); the cluster project's globalSetup starts it`);
  }
  return JSON.parse(readFileSync(p.clusterFile, 'utf8')) as ClusterInfo;
}

export interface StartOptions {
  /** Run build.sh first (returns at once when cached). Default: true unless EMUV_SKIP_BUILD=1. */
  build?: boolean;
  log?: Log;
}

export async function startCluster(opts: StartOptions = {}): Promise<ClusterInfo> {
  const log = opts.log ?? ((s: string) => console.log(`[cluster] ${s}`));
  const t0 = Date.now();
  const since = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  prepareHost(log);
  const bin = ensureBinaries({ build: opts.build ?? process.env.EMUV_SKIP_BUILD !== '1' });
  const p = paths();
  claimMachine(p);
  await cleanupStale(p, log);
  makeRunDir(p);
  log(`run dir ${p.runDir}; component logs in ${p.logDir}`);
  makePki(p);
  setupNetwork();
  setupCgroupRoot();
  mountDevicePluginDir(p);
  const info = writeClusterInfo(p, bin);

  try {
    const kube = new Kube(info);
    try {
      await startControlPlane(info, kube);
      log(`kube-apiserver ready at ${info.server} (+${since()})`);
      await startNode(info, kube);
      log(`node ${NODE_NAME} Ready; cluster up in ${since()}; admin kubeconfig: ${info.kubeconfig}`);
    } finally {
      kube.close();
    }
  } catch (e) {
    log(`cluster start failed; component logs are in ${p.logDir}`);
    await stopCluster(info, log).catch((err: unknown) => log(`teardown after failed start: ${(err as Error).message}`));
    throw e;
  }
  return info;
}

/** A fresh run directory and log directory (the logs of the previous run go now, not at its teardown). */
function makeRunDir(p: Paths): void {
  rmSync(p.logDir, { recursive: true, force: true });
  for (const d of [p.runDir, p.logDir, p.certs, p.pids, p.kubeletRoot, p.containerd, cniConfDir(p), devicePluginSource(p), cdiDir(p)]) {
    mkdirSync(d, { recursive: true });
  }
  recordNetns(p);
}

/** The cluster's facts, written to cluster.json before any daemon starts (a failed start is then cleaned up). */
function writeClusterInfo(p: Paths, bin: Binaries): ClusterInfo {
  const info: ClusterInfo = {
    paths: p,
    nodeName: NODE_NAME,
    nodeIP: NODE_IP,
    server: `https://${NODE_IP}:${APISERVER_PORT}`,
    ...adminFiles(p),
    devicePluginDir: DEVICE_PLUGIN_DIR,
    kubeletPluginsDir: path.join(p.kubeletRoot, 'plugins'),
    kubeletRegistryDir: path.join(p.kubeletRoot, 'plugins_registry'),
    cdiDir: cdiDir(p),
    podResourcesSocket: path.join(p.kubeletRoot, 'pod-resources/kubelet.sock'),
    kubernetesVersion: readVersions().KUBERNETES_VERSION ?? 'unknown',
    bin,
    daemons: daemonSpecs(p, bin),
  };
  writeFileSync(p.clusterFile, JSON.stringify(info, null, 2));
  return info;
}

/** etcd, then kube-apiserver until /readyz, then the scheduler and the controller-manager. */
async function startControlPlane(info: ClusterInfo, kube: Kube): Promise<void> {
  startDaemon(info, 'etcd');
  await waitDaemon(
    info,
    'etcd',
    'etcd to listen',
    30_000,
    () => spawnSync('nsenter', [`--net=/run/netns/${NETNS}`, '--', 'bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/2379']).status === 0,
  );
  startDaemon(info, 'kube-apiserver');
  await waitDaemon(
    info,
    'kube-apiserver',
    'kube-apiserver /readyz',
    120_000,
    async () => (await kube.raw('GET', '/readyz', undefined, undefined, 5_000)) === 'ok',
  );
  startDaemon(info, 'kube-scheduler');
  startDaemon(info, 'kube-controller-manager');
}

/** containerd with the node's images, then the kubelet until the node is Ready and schedulable. */
async function startNode(info: ClusterInfo, kube: Kube): Promise<void> {
  const p = info.paths;
  writeNodeConfigs(p, info.bin);
  const archives = buildNodeImages(p);
  startDaemon(info, 'containerd');
  await waitDaemon(info, 'containerd', 'containerd to answer', 30_000, () => ctrAnswers(info));
  importImages(info, archives, NODE_IMAGES);
  startDaemon(info, 'kubelet');
  await waitNodeReady(info, kube, 180_000);
}

export async function waitNodeReady(info: ClusterInfo, kube: Kube, timeoutMs = 120_000): Promise<Json> {
  let last: Json;
  try {
    return await waitFor(
      `node ${info.nodeName} Ready`,
      timeoutMs,
      async () => {
        if (daemonPid(info, 'kubelet') === undefined) throw new Error('kubelet exited');
        try {
          last = await kube.node();
        } catch (e) {
          if (e instanceof KubeError && e.status === 404) return undefined;
          throw e;
        }
        const ready = (last?.status?.conditions ?? []).find((c: Json) => c.type === 'Ready');
        // Schedulable too: the node lifecycle controller removes the not-ready taint a moment after Ready.
        const notReadyTaint = (last?.spec?.taints ?? []).some((t: Json) => t.key === 'node.kubernetes.io/not-ready');
        return ready?.status === 'True' && !notReadyTaint ? last : undefined;
      },
      500,
    );
  } catch (e) {
    const conds = JSON.stringify(last?.status?.conditions ?? null);
    throw new Error(`${(e as Error).message}\nnode conditions: ${conds}\n--- kubelet log tail:\n${logTail(info, 'kubelet')}`, {
      cause: e,
    });
  }
}

/** Restarts the kubelet (stop, start, wait for Ready). Usable from any process that can read cluster.json. */
export async function restartKubelet(info: ClusterInfo, kube: Kube, timeoutMs = 120_000): Promise<void> {
  await stopDaemon(info, 'kubelet');
  startDaemon(info, 'kubelet');
  await waitNodeReady(info, kube, timeoutMs);
}

export async function stopCluster(info: ClusterInfo | undefined, log: Log = () => {}): Promise<void> {
  const p = info?.paths ?? paths();
  if (info) {
    await deletePods(info, log);
    for (const name of ['kubelet', 'kube-controller-manager', 'kube-scheduler', 'containerd', 'kube-apiserver', 'etcd']) {
      await stopDaemon(info, name).catch((e: unknown) => log((e as Error).message));
    }
  }
  await cleanupStale(p, log);
  releaseMachine(p);
  log(`cluster stopped; component logs kept in ${p.logDir}`);
}

/** Pods first, while the kubelet still runs, so it tears their sandboxes and networks down properly. */
async function deletePods(info: ClusterInfo, log: Log): Promise<void> {
  const kube = new Kube(info);
  try {
    if (daemonPid(info, 'kubelet') && daemonPid(info, 'kube-apiserver')) {
      const pods = await kube.get('/api/v1/pods');
      for (const pod of pods.items ?? []) {
        await kube
          .json('DELETE', `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}?gracePeriodSeconds=0`)
          .catch(() => undefined);
      }
      await waitFor('pod sandboxes to stop', 30_000, () => cgroupPids().length === 0 || undefined).catch(() =>
        log('some pod processes were still running; killing them'),
      );
    }
  } catch (e) {
    log(`graceful pod deletion skipped: ${(e as Error).message}`);
  } finally {
    kube.close();
  }
}

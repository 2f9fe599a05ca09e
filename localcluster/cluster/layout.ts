// Where the cluster lives and what it is called: the fixed names and addresses (one cluster per machine),
// the run directory's layout, and the cluster facts (ClusterInfo) written to cluster.json. Every other
// stage reads its paths and names from here, so a change of layout is made in one place.
import path from 'node:path';

export const NETNS = 'emuv-cluster';
export const NODE_NAME = 'emuv-node';
/** The host end of the veth pair; the node's processes reach the test process at this address. */
export const HOST_IP = '10.213.0.1';
/** The node's address: not loopback (the kubelet refuses one), reachable from the host. */
export const NODE_IP = '10.213.0.2';
export const VETH_HOST = 'emuv-h0';
export const VETH_NODE = 'emuv-n0';
export const POD_CIDR = '10.214.0.0/24';
export const SERVICE_CIDR = '10.215.0.0/24';
export const SERVICE_IP = '10.215.0.1';
export const APISERVER_PORT = 6443;
/** The kubelet's cgroup root (cgroupfs driver); every container of the test cluster lives below it. */
export const CGROUP_ROOT = 'emuv-test';
/** The kubelet hard-codes its device plugin directory; the cluster bind-mounts a run-dir folder onto it. */
export const DEVICE_PLUGIN_DIR = '/var/lib/kubelet/device-plugins';
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10';
export const PROBE_IMAGE = 'emuv.local/probe:1';
/** Names the run directory (and the process) that holds this machine's one cluster. */
export const OWNER_FILE = '/run/emuv-test-cluster.owner';

export interface Paths {
  runDir: string;
  logDir: string;
  cacheDir: string;
  certs: string;
  pids: string;
  kubeletRoot: string;
  containerd: string;
  clusterFile: string;
}

/** The run directory's layout; EMUV_RUN_DIR, EMUV_CLUSTER_LOG_DIR and EMUV_CACHE_DIR move its parts. */
export function paths(): Paths {
  const runDir = path.resolve(process.env.EMUV_RUN_DIR ?? '/tmp/emuv-cluster');
  const logDir = path.resolve(process.env.EMUV_CLUSTER_LOG_DIR ?? `${runDir}-logs`);
  const cacheDir = path.resolve(process.env.EMUV_CACHE_DIR ?? path.join(process.env.HOME ?? '/root', '.cache/emuv'));
  return {
    runDir,
    logDir,
    cacheDir,
    certs: path.join(runDir, 'pki'),
    pids: path.join(runDir, 'pids'),
    kubeletRoot: path.join(runDir, 'kubelet'),
    containerd: path.join(runDir, 'containerd'),
    clusterFile: path.join(runDir, 'cluster.json'),
  };
}

/** The directories for the node's CNI configuration and the device-plugin bind mount. */
export const cniConfDir = (p: Paths) => path.join(p.runDir, 'cni/net.d');
export const devicePluginSource = (p: Paths) => path.join(p.runDir, 'device-plugins');
/**
 * Where the node's containerd reads CDI specs: a run-dir folder rather than the host's /etc/cdi and /var/run/cdi
 * (containerd's defaults), so nothing on this machine leaks into the test node and a crashed run leaves nothing
 * in the host's. DRA drivers write their per-claim specs here (emuv's agent: --cdi-dir).
 */
export const cdiDir = (p: Paths) => path.join(p.runDir, 'cdi');

/** The binary directories build.sh fills (cached by version). */
export interface Binaries {
  kubernetes: string;
  etcd: string;
  helm: string;
  /** containerd, containerd-shim-runc-v2 and ctr: the node's runtime is always this build, never the host's. */
  containerd: string;
  runc: string;
}

export interface DaemonSpec {
  name: string;
  argv: string[];
  /** Run inside the cluster network namespace. */
  netns: boolean;
}

/** What a test needs to know about the running cluster; written to cluster.json. */
export interface ClusterInfo {
  paths: Paths;
  nodeName: string;
  nodeIP: string;
  server: string;
  /** Admin kubeconfig for clients on the host (server https://NODE_IP:6443). */
  kubeconfig: string;
  caFile: string;
  adminCert: string;
  adminKey: string;
  devicePluginDir: string;
  /** The kubelet's DRA plugin directories (under its root dir) and the node's CDI spec directory. */
  kubeletPluginsDir: string;
  kubeletRegistryDir: string;
  cdiDir: string;
  podResourcesSocket: string;
  kubernetesVersion: string;
  bin: Binaries;
  daemons: Record<string, DaemonSpec>;
}

// localcluster/: emuv on this machine, for development. It holds a real single-node Kubernetes cluster
// (cluster/), the images that run on it (images/), the node's GPU real or simulated (gpu-node.ts), emuv
// installed on it with its chart (emuv-demo.ts), and the stand-in kubelet of the cluster-less demo
// (stand-in-kubelet.ts). `npm run demo`, `npm run demo:local`, the cluster tests and the benchmarks all use
// it, so the demo and the tests run the same steps from one place.
//
// Why a top-level folder and not test/: the demos are product scripts, and product code does not import
// from test/. Why not in common/, plugin/ or operator/: none of it ships. The Dockerfile copies named
// folders only, and .dockerignore keeps this one out of the build context; the bundle (scripts/build.mjs)
// starts from plugin/main.ts and operator/main.ts, which never import it.
//
// This file is the library's public face: import from here.

// The cluster (cluster/lifecycle.ts has the data flow): start, find, stop, and what a test needs of it.
export { loadCluster, restartKubelet, startCluster, stopCluster, waitNodeReady, type StartOptions } from './cluster/lifecycle.ts';
export {
  CGROUP_ROOT,
  DEVICE_PLUGIN_DIR,
  HOST_IP,
  NETNS,
  NODE_IP,
  NODE_NAME,
  PAUSE_IMAGE,
  PROBE_IMAGE,
  paths,
  type Binaries,
  type ClusterInfo,
  type DaemonSpec,
  type Paths,
} from './cluster/layout.ts';
export { checkHost, prepareHost, runSetupHost } from './cluster/host.ts';
export { ensureBinaries, readVersions } from './cluster/binaries.ts';
export { cleanupStale } from './cluster/cleanup.ts';
export { daemonPid, startDaemon, stopDaemon } from './cluster/daemons.ts';
export { Kube, KubeError, type Json } from './cluster/kube.ts';
export { helm, kubectl } from './cluster/tools.ts';
export { capture, must, sleep, waitFor, type Captured } from './cluster/process.ts';

// Images: the Dockerfile built by buildah from local base images; the test images packed directly.
export { buildOciArchive, type OciImage } from './images/oci-archive.ts';
export {
  buildEmuvImage,
  buildImage,
  buildWorkloadImage,
  EMUV_IMAGE,
  layerSizes,
  type BuildOptions,
  type ImageFacts,
  type LayerSize,
} from './images/emuv-image.ts';
export { DEBIAN_IMAGE, NODE_IMAGE, RUNTIME_IMAGE, ensureBaseImages } from './images/base-images.ts';
export { buildah, haveBuildah, type Buildah } from './images/buildah.ts';
export { dockerfileEntrypoint, externalBases, qualify } from './images/dockerfile.ts';

// The node's GPU, and emuv installed on the cluster as a user installs it.
export {
  hostDriver,
  makeStandInDevices,
  NVIDIA_DEVICE_NODES,
  prepareGpuNode,
  SIMULATED_GPU,
  SIMULATED_VRAM,
  type GpuNode,
  type HostDriver,
} from './gpu-node.ts';
export {
  ClusterDemo,
  CHART_DIR,
  chartValues,
  DEMO_LIMIT,
  DEMO_NAMESPACE,
  DEMO_POD,
  demoPod,
  NAMESPACE,
  RELEASE,
  type ClusterDemoOptions,
  type InstallResult,
  type Observed,
  type WorkloadResult,
} from './emuv-demo.ts';

// Prometheus configured from the chart's ServiceMonitors and PrometheusRule, and the prometheus-operator CRDs.
export {
  clusterSd,
  installOperatorCrds,
  operatorCrds,
  Prometheus,
  prometheusBuild,
  removeOperatorCrds,
  scrapeConfigs,
  serverSideApply,
  type KubernetesSd,
  type PrometheusBuild,
  type PrometheusOptions,
  type Sample,
} from './prometheus.ts';

// Without a cluster: the stand-in kubelet, and where things are in this checkout.
export { StandInKubelet, type PluginConnection } from './stand-in-kubelet.ts';
export { copyNodeFixture, NODE_BIN, NODE_FIXTURES, REPO_ROOT, runEmuv, tempDir } from './repo.ts';

// What each component of the cluster is told: the daemons' command lines (kept in cluster.json, so any
// process can restart one) and the configuration files of containerd, the CNI bridge and the kubelet.
// Pure text from the layout: nothing here starts or touches anything but the files writeNodeConfigs writes.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  APISERVER_PORT,
  CGROUP_ROOT,
  NODE_IP,
  NODE_NAME,
  PAUSE_IMAGE,
  POD_CIDR,
  SERVICE_CIDR,
  cdiDir,
  cniConfDir,
  type Binaries,
  type DaemonSpec,
  type Paths,
} from './layout.ts';

/** Every daemon of the cluster, by name; all run in the cluster's network namespace. */
export function daemonSpecs(p: Paths, bin: Binaries): Record<string, DaemonSpec> {
  const k = (b: string) => path.join(bin.kubernetes, b);
  const c = p.certs;
  return {
    etcd: {
      name: 'etcd',
      netns: true,
      argv: [
        path.join(bin.etcd, 'etcd'),
        '--name=emuv',
        `--data-dir=${p.runDir}/etcd`,
        '--listen-client-urls=http://127.0.0.1:2379',
        '--advertise-client-urls=http://127.0.0.1:2379',
        '--listen-peer-urls=http://127.0.0.1:2380',
        '--initial-advertise-peer-urls=http://127.0.0.1:2380',
        '--initial-cluster=emuv=http://127.0.0.1:2380',
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ],
    },
    'kube-apiserver': {
      name: 'kube-apiserver',
      netns: true,
      argv: [
        k('kube-apiserver'),
        '--etcd-servers=http://127.0.0.1:2379',
        '--bind-address=0.0.0.0',
        `--secure-port=${APISERVER_PORT}`,
        `--advertise-address=${NODE_IP}`,
        `--cert-dir=${p.runDir}/apiserver`,
        `--tls-cert-file=${c}/apiserver.crt`,
        `--tls-private-key-file=${c}/apiserver.key`,
        `--client-ca-file=${c}/ca.crt`,
        `--kubelet-client-certificate=${c}/apiserver-kubelet-client.crt`,
        `--kubelet-client-key=${c}/apiserver-kubelet-client.key`,
        '--kubelet-preferred-address-types=InternalIP',
        '--service-account-issuer=https://kubernetes.default.svc',
        `--service-account-key-file=${c}/sa.pub`,
        `--service-account-signing-key-file=${c}/sa.key`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--authorization-mode=Node,RBAC',
        '--enable-admission-plugins=NodeRestriction',
        '--allow-privileged=true',
        '--enable-aggregator-routing=true',
        '--profiling=false',
        '--v=1',
        `--requestheader-client-ca-file=${c}/ca.crt`,
        '--requestheader-allowed-names=emuv-front-proxy',
        '--requestheader-username-headers=X-Remote-User',
        '--requestheader-group-headers=X-Remote-Group',
        '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      ],
    },
    'kube-scheduler': {
      name: 'kube-scheduler',
      netns: true,
      argv: [
        k('kube-scheduler'),
        `--kubeconfig=${c}/scheduler.kubeconfig`,
        `--authentication-kubeconfig=${c}/scheduler.kubeconfig`,
        `--authorization-kubeconfig=${c}/scheduler.kubeconfig`,
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        '--v=2',
      ],
    },
    'kube-controller-manager': {
      name: 'kube-controller-manager',
      netns: true,
      argv: [
        k('kube-controller-manager'),
        `--kubeconfig=${c}/controller-manager.kubeconfig`,
        `--authentication-kubeconfig=${c}/controller-manager.kubeconfig`,
        `--authorization-kubeconfig=${c}/controller-manager.kubeconfig`,
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--service-account-private-key-file=${c}/sa.key`,
        `--root-ca-file=${c}/ca.crt`,
        '--use-service-account-credentials=true',
        '--controllers=*,-nodeipam',
        `--cert-dir=${p.runDir}/controller-manager`,
        '--v=1',
      ],
    },
    containerd: {
      name: 'containerd',
      netns: true,
      // build.sh's containerd, never the host's (Debian 12's 1.6 has no CDI and no CRI RuntimeConfig).
      argv: [path.join(bin.containerd, 'containerd'), `--config=${p.containerd}/config.toml`],
    },
    kubelet: {
      name: 'kubelet',
      netns: true,
      argv: [
        k('kubelet'),
        `--config=${p.kubeletRoot}/config.yaml`,
        `--kubeconfig=${c}/kubelet.kubeconfig`,
        `--root-dir=${p.kubeletRoot}`,
        `--cert-dir=${p.kubeletRoot}/pki`,
        `--hostname-override=${NODE_NAME}`,
        `--node-ip=${NODE_IP}`,
        '--v=2',
      ],
    },
  };
}

/** The node's configuration files: containerd's, the CNI network's and the kubelet's. */
export function writeNodeConfigs(p: Paths, bin: Binaries): void {
  writeFileSync(path.join(p.containerd, 'config.toml'), containerdConfig(p, bin));
  writeFileSync(path.join(cniConfDir(p), '10-emuv-test.conflist'), cniConfig(p));
  writeFileSync(path.join(p.kubeletRoot, 'config.yaml'), kubeletConfig(p));
}

function containerdConfig(p: Paths, bin: Binaries): string {
  const c = p.containerd;
  // Config version 4 (containerd 2.4): the sockets are the grpc/ttrpc/debug server plugins' (a top-level [grpc]
  // is ignored there, and containerd would listen on /run/containerd/containerd.sock, a host containerd's socket);
  // the CRI settings are split into the cri.v1.images and cri.v1.runtime plugins.
  return `version = 4
root = "${c}/root"
state = "${c}/state"
# Nothing from the host's /etc/containerd (the built-in default imports /etc/containerd/conf.d/*.toml).
imports = []
# NRI would listen on the host-wide /var/run/nri/nri.sock; the others are unused storage backends and tracing.
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs", "io.containerd.snapshotter.v1.blockfile", "io.containerd.tracing.processor.v1.otlp"]

[debug]
  level = "info"

[plugins.'io.containerd.server.v1.grpc']
  address = "${c}/containerd.sock"

[plugins.'io.containerd.server.v1.ttrpc']
  address = "${c}/containerd.sock.ttrpc"

[plugins.'io.containerd.server.v1.debug']
  address = "${c}/debug.sock"

[plugins.'io.containerd.internal.v1.opt']
  path = "${c}/opt"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "${PAUSE_IMAGE}"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "${c}/certs.d"

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  # This host lets even root not lower oom_score_adj (no CAP_SYS_RESOURCE): the pause sandbox asks for -998.
  restrict_oom_score_adj = true
  disable_apparmor = true
  # CDI is always on in containerd 2.4 (enable_cdi is gone). One run-dir folder instead of its defaults (/etc/cdi,
  # /var/run/cdi): DRA drivers on this node write their per-claim specs there (layout.ts, cdiDir).
  cdi_spec_dirs = ${JSON.stringify([cdiDir(p)])}
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      # The shim of this containerd build: by name containerd would search PATH first and could find a host's
      # older containerd-shim-runc-v2.
      runtime_path = "${path.join(bin.containerd, 'containerd-shim-runc-v2')}"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        # cgroupfs, as the kubelet's cgroupDriver; containerd reports it to the kubelet (CRI RuntimeConfig).
        SystemdCgroup = false
        BinaryName = "${path.join(bin.runc, 'runc')}"
        Root = "${c}/runc"
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "${cniConfDir(p)}"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`;
}

function cniConfig(p: Paths): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: 'emuv-test',
      plugins: [
        {
          type: 'bridge',
          bridge: 'emuv-cni0',
          isGateway: true,
          // Pods of the chart (agent, operator) talk to the apiserver at the node address.
          isDefaultGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: { type: 'host-local', ranges: [[{ subnet: POD_CIDR }]], dataDir: `${p.runDir}/cni/ipam` },
        },
      ],
    },
    null,
    2,
  );
}

function kubeletConfig(p: Paths): string {
  const d = p.certs;
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /${CGROUP_ROOT}
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
containerRuntimeEndpoint: unix://${p.containerd}/containerd.sock
failSwapOn: false
address: ${NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: ${d}/kubelet-serving.crt
tlsPrivateKeyFile: ${d}/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: ${d}/ca.crt}
authorization:
  mode: AlwaysAllow
podLogsDir: ${p.runDir}/pod-logs
resolvConf: /etc/resolv.conf
registerNode: true
maxPods: 30
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
  imagefs.inodesFree: 1%
evictionPressureTransitionPeriod: 5s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 24h
serializeImagePulls: false
nodeStatusUpdateFrequency: 10s
nodeStatusReportFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 10s
shutdownGracePeriod: 0s
`;
}

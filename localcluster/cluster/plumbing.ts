// What the node takes from the host kernel, set up before its daemons start: the network namespace
// `emuv-cluster` with a veth pair to the host, the kubelet's cgroup root, and the kubelet's fixed
// device-plugin directory bind-mounted from the run directory. cleanup.ts takes all three down again.
//
// Only the network namespace is entered (nsenter --net): the mount namespace stays the host's, so the
// kubelet, containerd and the tests see the same mounts.
import { lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  CGROUP_ROOT,
  DEVICE_PLUGIN_DIR,
  HOST_IP,
  NETNS,
  NODE_IP,
  POD_CIDR,
  VETH_HOST,
  VETH_NODE,
  devicePluginSource,
  type Paths,
} from './layout.ts';
import { run } from './process.ts';

export function setupNetwork(): void {
  run('ip', ['netns', 'add', NETNS]);
  run('ip', ['-n', NETNS, 'link', 'set', 'lo', 'up']);
  run('ip', ['link', 'add', VETH_HOST, 'type', 'veth', 'peer', 'name', VETH_NODE, 'netns', NETNS]);
  run('ip', ['addr', 'add', `${HOST_IP}/30`, 'dev', VETH_HOST]);
  run('ip', ['link', 'set', VETH_HOST, 'up']);
  run('ip', ['-n', NETNS, 'addr', 'add', `${NODE_IP}/30`, 'dev', VETH_NODE]);
  run('ip', ['-n', NETNS, 'link', 'set', VETH_NODE, 'up']);
  // Pods are reachable from the host (the agent's /metrics and /status, as from a monitoring system):
  // the node forwards between its veth and the pod bridge; the route goes away with the veth.
  run('ip', ['netns', 'exec', NETNS, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  run('ip', ['route', 'add', POD_CIDR, 'via', NODE_IP, 'dev', VETH_HOST]);
}

/** The kubelet's cgroup root in every hierarchy; cpuset needs its cpus and mems copied from the parent. */
export function setupCgroupRoot(): void {
  const base = '/sys/fs/cgroup';
  for (const c of readdirSync(base)) {
    const parent = path.join(base, c);
    if (!lstatSync(parent).isDirectory()) continue;
    const dir = path.join(parent, CGROUP_ROOT);
    mkdirSync(dir, { recursive: true });
    if (c === 'cpuset') {
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        writeFileSync(path.join(dir, f), readFileSync(path.join(parent, f), 'utf8'));
      }
    }
  }
}

/** The kubelet's device-plugin directory is fixed; give it a folder of ours so the run dir holds all state. */
export function mountDevicePluginDir(p: Paths): void {
  mkdirSync(DEVICE_PLUGIN_DIR, { recursive: true });
  run('mount', ['--bind', devicePluginSource(p), DEVICE_PLUGIN_DIR]);
}

/**
 * `npm run demo`: emuv as an operator meets it, on a real single-node Kubernetes cluster on this machine
 * (localcluster/: kube-apiserver, etcd, scheduler, controller-manager, containerd and a kubelet built
 * from upstream sources by localcluster/cluster/build.sh). The steps are localcluster/emuv-demo.ts's, the
 * ones test/cluster/delivery-e2e.test.ts asserts; this script prints what they return.
 *
 *   1. bring the cluster up (host packages and binaries are installed/built the first time);
 *   2. build the emuv image from the Dockerfile's recipe and import it into the node's containerd;
 *   3. `helm install` the chart: CRDs, the agent DaemonSet, the operator and its webhook;
 *   4. a pod asks for emuv.io/vram-virtual: 28Gi and allocates 20 GiB through the CUDA driver API;
 *   5. what an operator sees: `kubectl get emuvnodes`, /metrics and `emuv top --once`.
 *
 * The cluster stays up afterwards (its KUBECONFIG is printed); `npm run demo:down` removes everything.
 * Without an NVIDIA GPU the node's GPU is SIMULATED (an 8 GiB GeForce: sysfs fixture + the simulated
 * driver); with one, it is this machine's, its driver libraries mounted into the workload the way the
 * NVIDIA container toolkit would (the local cluster has no NVIDIA runtime). `npm run demo:local` runs the
 * node-side pipeline without a cluster or root.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  ClusterDemo,
  DEMO_LIMIT,
  DEMO_NAMESPACE,
  DEMO_POD,
  hostDriver,
  Kube,
  loadCluster,
  NAMESPACE,
  paths,
  RELEASE,
  runSetupHost,
  startCluster,
  stopCluster,
} from '../localcluster/index.ts';

const GiB = 2 ** 30;
const say = (s = '') => process.stdout.write(`${s}\n`);
const section = (s: string) => say(`\n== ${s}`);
const indent = (text: string) => text.replace(/\n$/, '').replace(/^/gm, '   ');

function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'npm run demo runs a Kubernetes node on this machine (network namespace, mounts, cgroups, containerd) and must run as root.\n' +
        'Without root, `npm run demo:local` shows the node-side pipeline (agent, device plugin, interposer) with no cluster.',
    );
  }
}

async function up(): Promise<void> {
  requireRoot();
  say('emuv demo: virtual GPU memory on Kubernetes, VRAM first, then host RAM');
  section('1. a single-node Kubernetes cluster on this machine (localcluster)');
  runSetupHost();
  const info = await startCluster({ log: (s) => say(`   ${s}`) });
  const kube = new Kube(info);
  try {
    const driver = hostDriver();
    const demo = new ClusterDemo(info, kube, { driver, log: (s) => say(`   ${s}`) });
    section('2. the emuv image, built from the Dockerfile recipe, imported into the node');
    demo.loadImages();

    section('3. helm install emuv');
    if (driver) {
      say(`   REAL GPU: the node is this machine (its sysfs, /proc and /dev); the workload gets ${driver.libcuda}`);
      say('   and libnvidia-ml mounted where the NVIDIA container toolkit would put them.');
    } else {
      say('   SIMULATED GPU: the node is test/fixtures/nodes/demo-geforce (a GeForce RTX 4060, 8 GiB, in a 48 GiB');
      say('   workstation), its device nodes are stand-ins and the workload image carries the simulated CUDA driver');
      say('   (native/build/sim) where the NVIDIA container toolkit would put the real one. Everything emuv does is real.');
    }
    demo.prepareNode();
    const installed = await demo.install();
    say(indent(installed.helmOutput.split('\n').slice(0, 6).join('\n')));
    say(
      `   node ${info.nodeName} allocatable emuv.io/vram-virtual: ${installed.vramVirtualBytes} (${(installed.vramVirtualBytes / GiB).toFixed(1)} GiB)`,
    );

    section(`4. a pod asks for emuv.io/vram-virtual: ${DEMO_LIMIT} and allocates 20 GiB through the CUDA driver API`);
    const w = await demo.runWorkload();
    const c = w.pod.spec.containers[0];
    say(`   ${DEMO_NAMESPACE}/${DEMO_POD} as stored (mutated by the emuv webhook):`);
    say(`     limits   ${JSON.stringify(c.resources.limits)}`);
    say(`     requests ${JSON.stringify(c.resources.requests)}`);
    say(`   its log:`);
    say(indent(indent(w.log)));

    section('5. what an operator sees');
    const o = await demo.observe();
    say(`   kubectl get emuvnodes -o wide`);
    say(indent(indent(o.emuvNodes)));
    say(`   agent /metrics (excerpt):`);
    for (const line of o.metrics.split('\n'))
      if (/^emuv_(container_(limit|vram_used|host_spill)_bytes|node_vram_virtual_bytes|allocations_total)/.test(line)) say(`     ${line}`);
    say(`   emuv top --once --url=${demo.agentUrl}`);
    say(indent(indent(o.top)));

    section('the cluster stays up');
    say(`   export KUBECONFIG=${info.kubeconfig}`);
    say(`   kubectl is at ${path.join(info.bin.kubernetes, 'kubectl')}, helm at ${path.join(info.bin.helm, 'helm')}`);
    say(`   e.g. kubectl get pods -A; kubectl get emuvnodes; helm list -n ${NAMESPACE}; helm uninstall ${RELEASE} -n ${NAMESPACE}`);
    say(`   emuv top (live): node_modules/.bin/node plugin/main.ts top --url=${demo.agentUrl}`);
    say('   remove everything: npm run demo:down');
  } finally {
    kube.close();
  }
}

async function down(): Promise<void> {
  requireRoot();
  const p = paths();
  const info = existsSync(p.clusterFile) ? loadCluster(p) : undefined;
  if (info) {
    const kube = new Kube(info);
    const demo = new ClusterDemo(info, kube);
    if (demo.isInstalled()) {
      // Uninstalled first, as a user would: otherwise the DaemonSet and Deployment controllers keep
      // replacing the pods the teardown deletes.
      say(`helm uninstall ${RELEASE} --namespace ${NAMESPACE}`);
      await demo.uninstall().catch((e: unknown) => say(`helm uninstall failed (${(e as Error).message}); tearing down anyway`));
    }
    kube.close();
  }
  await stopCluster(info, (s) => say(s));
}

(process.argv[2] === 'down' ? down() : up()).catch((err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  if (process.argv[2] !== 'down')
    process.stderr.write(`Component logs: ${paths().logDir}. What was started stays up for a look; npm run demo:down removes it.\n`);
  process.exitCode = 1;
});

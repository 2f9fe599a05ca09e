// `npm run bench`: every benchmark, in one run, each comparing against a baseline measured in the same
// run; results in bench/results/*.json (summarised in docs/benchmarks.md with the machine they ran on).
//   deviceplugin   Allocate latency over real gRPC vs a no-op plugin, start-to-registered, RSS
//   native-alloc   alloc/free through the interposer vs the simulated driver called directly
//   native-stats   stats-file read time of the TypeScript reader
//   webhook        admission latency at 200/s over HTTPS vs a no-op handler
//   reconcile      1,000 nodes x 20 policies to convergence (fake apiserver)
//   reconcile-cluster  the same against the real kube-apiserver of the test cluster (root; built binaries)
//   dra            NodePrepare/NodeUnprepareResources over real gRPC (agent's driver, real host side) vs a no-op driver
//   dra-cluster    DRA claim pod vs device-plugin pod create-to-Running, ResourceSlice re-publish (test cluster; root)
//   image          the Dockerfile built by buildah: size, layers, per-layer bytes vs a Debian runtime base (root)
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const node = process.execPath;
const run = (what, cmd, args) => {
  console.log(`\n=== ${what}`);
  execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
};
run('build (the agent is measured as the bundle it ships as)', node, ['scripts/build.mjs']);
run('deviceplugin', node, ['bench/deviceplugin.ts']);
run('native-alloc', 'make', ['-C', 'native', '-s', 'bench']);
run('native-stats', node, ['bench/native-stats-read.ts']);
run('webhook', node, ['bench/webhook.ts']);
run('reconcile', node, ['bench/reconcile.ts']);
run('reconcile-cluster', node, ['bench/reconcile-cluster.ts']);
run('dra', node, ['bench/dra.ts']);
run('dra-cluster', node, ['bench/dra-cluster.ts']);
run('image', node, ['bench/image.ts']);
console.log('\nresults: bench/results/*.json; summary: docs/benchmarks.md');

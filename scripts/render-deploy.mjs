// Writes deploy/emuv.yaml: the Helm chart rendered with its default values for namespace emuv-system,
// for `kubectl apply` users (after deploy/crds/ and `kubectl create namespace emuv-system`). Hooks are
// left out: the uninstall hook is a pre-delete Job that `kubectl apply` would run at once. A cluster test
// (test/cluster/helm.test.ts) fails when this file and the chart drift; rerun `npm run render:deploy`.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dirs = execFileSync('bash', [join(root, 'localcluster/cluster/build.sh'), '--print-dir'], { encoding: 'utf8' }).toString();
const helmDir = /^HELM_BIN=(.+)$/m.exec(dirs)?.[1];
const k8sVersion = /^KUBERNETES_VERSION=(.+)$/m.exec(readFileSync(join(root, 'localcluster/cluster/build/versions.env'), 'utf8'))?.[1];
if (!helmDir || !k8sVersion) throw new Error('cannot find helm (run bash localcluster/cluster/build.sh) or the Kubernetes version');
const rendered = execFileSync(
  join(helmDir, 'helm'),
  ['template', 'emuv', join(root, 'helm/emuv'), '--namespace', 'emuv-system', '--kube-version', k8sVersion, '--no-hooks', '--skip-crds'],
  { encoding: 'utf8' },
);
const header = `# emuv, rendered from helm/emuv with its default values for namespace emuv-system (npm run render:deploy;
# do not edit). Apply deploy/crds/ first and create the namespace:
#   kubectl apply -f deploy/crds/ && kubectl create namespace emuv-system && kubectl apply -f deploy/emuv.yaml
# Helm is the supported install: without it there is no uninstall hook, so delete the agent DaemonSet with
# --cascade=foreground first when removing emuv (docs/agent.md, Uninstall).
`;
writeFileSync(join(root, 'deploy/emuv.yaml'), header + rendered);
console.log('wrote deploy/emuv.yaml');

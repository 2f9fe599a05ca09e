/**
 * Where the agent and the operator find the apiserver: a kubeconfig file when one is named, else the
 * pod's in-cluster configuration. Failures become a StartupError that names the flag, because the
 * client's own message names a file or a variable, not the setting a person has to change.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { describeSystemError, StartupError } from '../errors.ts';

/**
 * In-cluster configuration when kubeconfigPath is null or empty, else that file. `from` is the setting that
 * named the file (`--kubeconfig`, a program's variable, `KUBECONFIG`: common/flags.ts), which an error names.
 */
export function loadKubeConfig(kubeconfigPath: string | null, from = '--kubeconfig'): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
    else {
      kc.loadFromCluster();
      // Outside a pod the client does not fail here: it builds https://undefined:undefined and every
      // request fails later, forever, with a network error that says nothing about the configuration.
      if (kc.getCurrentCluster()?.server.includes('undefined'))
        throw new Error('KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set');
    }
  } catch (err) {
    throw new StartupError(
      'kubeconfig',
      kubeconfigPath
        ? `${from.startsWith('--') ? `${from} ${kubeconfigPath}` : `${from}=${kubeconfigPath}`}: cannot load: ${describeSystemError(err)}`
        : `no --kubeconfig and no in-cluster configuration (${describeSystemError(err)}); outside a pod, pass --kubeconfig or set KUBECONFIG`,
      { cause: err },
    );
  }
  return kc;
}

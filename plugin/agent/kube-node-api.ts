/**
 * NodeApi, EmuvNodeApi and UninstallApi over @kubernetes/client-node. Imported lazily by main.ts only when node status is on:
 * the client library alone costs ~60 MiB of RSS, which a standalone device plugin should not pay.
 */
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  Observable,
  PatchStrategy,
  setHeaderOptions,
  type ConfigurationOptions,
  type ObservableMiddleware,
} from '@kubernetes/client-node';
import { GROUP, PLURAL_NODE, VERSION } from '../../common/contracts/emuv-node.ts';
import { describeSystemError, StartupError } from '../../common/errors.ts';
import type { EmuvNodeApi, EmuvNodeView } from './emuv-node.ts';
import type { JsonPatchOp, NodeApi, NodeView } from './node-status.ts';
import type { RemoveAgentsApi } from './remove-agents.ts';
import type { DaemonSetRef, DaemonSetView, UninstallApi } from './uninstall.ts';

/** In-cluster configuration when kubeconfigPath is null, else that file. */
export function loadKubeConfig(kubeconfigPath: string | null): KubeConfig {
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
    // The client's own message names a file or a variable, not the flag that chose them.
    throw new StartupError(
      'kubeconfig',
      kubeconfigPath
        ? `--kubeconfig ${kubeconfigPath}: cannot load: ${describeSystemError(err)}`
        : `no --kubeconfig and no in-cluster configuration (${describeSystemError(err)}); outside a pod, pass --kubeconfig`,
      { cause: err },
    );
  }
  return kc;
}

/**
 * Options that abort each request after timeoutMs (a fresh signal per request). For the calls made at
 * SIGTERM: an apiserver that does not answer must not hold the agent past its grace period.
 */
function withRequestTimeout(timeoutMs: number | undefined, options?: ConfigurationOptions): ConfigurationOptions | undefined {
  if (timeoutMs === undefined) return options;
  const abortAfter: ObservableMiddleware = {
    pre: (ctx) => {
      ctx.setSignal(AbortSignal.timeout(timeoutMs));
      return new Observable(Promise.resolve(ctx));
    },
    post: (res) => new Observable(Promise.resolve(res)),
  };
  return { ...options, middleware: [...(options?.middleware ?? []), abortAfter], middlewareMergeStrategy: 'append' };
}

/** `timeoutMs`: abort each request after that long; unset, requests wait as long as the client does. */
export function createNodeApi(kc: KubeConfig, opts: { timeoutMs?: number } = {}): NodeApi {
  const core = kc.makeApiClient(CoreV1Api);
  const plain = withRequestTimeout(opts.timeoutMs);
  const jsonPatch = withRequestTimeout(opts.timeoutMs, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
  return {
    getNode: async (name) => (await core.readNode({ name }, plain)) as NodeView,
    patchNodeStatus: async (name, ops: JsonPatchOp[]) => {
      await core.patchNodeStatus({ name, body: ops }, jsonPatch);
    },
    patchNode: async (name, ops: JsonPatchOp[]) => {
      await core.patchNode({ name, body: ops }, jsonPatch);
    },
  };
}

const notFound = (err: unknown): boolean => err instanceof ApiException && err.code === 404;

/** GET of one DaemonSet; null on 404. */
function readDaemonSet(apps: AppsV1Api, options: ConfigurationOptions | undefined) {
  return async ({ namespace, name }: DaemonSetRef): Promise<DaemonSetView | null> => {
    try {
      return (await apps.readNamespacedDaemonSet({ namespace, name }, options)) as DaemonSetView;
    } catch (err) {
      if (notFound(err)) return null;
      throw err;
    }
  };
}

/** The calls made at SIGTERM (plugin/agent/uninstall.ts), each aborted after timeoutMs. */
export function createUninstallApi(kc: KubeConfig, timeoutMs: number): UninstallApi {
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const plain = withRequestTimeout(timeoutMs);
  return {
    ...createNodeApi(kc, { timeoutMs }),
    getDaemonSet: readDaemonSet(apps, plain),
    deleteEmuvNode: async (name) => {
      try {
        await custom.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL_NODE, name }, plain);
        return true;
      } catch (err) {
        if (notFound(err)) return false;
        throw err;
      }
    },
  };
}

/** `emuv remove-agents` (remove-agents.ts), each request aborted after timeoutMs. */
export function createRemoveAgentsApi(kc: KubeConfig, timeoutMs: number): RemoveAgentsApi {
  const apps = kc.makeApiClient(AppsV1Api);
  const plain = withRequestTimeout(timeoutMs);
  return {
    deleteDaemonSetForeground: async ({ namespace, name }) => {
      try {
        await apps.deleteNamespacedDaemonSet({ namespace, name, propagationPolicy: 'Foreground' }, plain);
        return true;
      } catch (err) {
        if (notFound(err)) return false;
        throw err;
      }
    },
    getDaemonSet: readDaemonSet(apps, plain),
  };
}

export function createEmuvNodeApi(kc: KubeConfig): EmuvNodeApi {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  return {
    get: async (name) => {
      try {
        return (await custom.getClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL_NODE, name })) as EmuvNodeView;
      } catch (err) {
        if (notFound(err)) return null;
        throw err;
      }
    },
    patchStatus: async (name, status) => {
      await custom.patchClusterCustomObjectStatus(
        { group: GROUP, version: VERSION, plural: PLURAL_NODE, name, body: { status } },
        mergePatch,
      );
    },
  };
}

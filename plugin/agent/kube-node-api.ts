/**
 * NodeApi over @kubernetes/client-node. Imported lazily by main.ts only when node status is on:
 * the client library alone costs ~60 MiB of RSS, which a standalone device plugin should not pay.
 */
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { GROUP, PLURAL_NODE, VERSION } from '../../common/contracts/emuv-node.ts';
import type { EmuvNodeApi, EmuvNodeView } from './emuv-node.ts';
import type { JsonPatchOp, NodeApi, NodeView } from './node-status.ts';

/** In-cluster configuration when kubeconfigPath is null, else that file. */
export function loadKubeConfig(kubeconfigPath: string | null): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromCluster();
  return kc;
}

export function createNodeApi(kc: KubeConfig): NodeApi {
  const core = kc.makeApiClient(CoreV1Api);
  const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
  return {
    getNode: async (name) => (await core.readNode({ name })) as NodeView,
    patchNodeStatus: async (name, ops: JsonPatchOp[]) => {
      await core.patchNodeStatus({ name, body: ops }, jsonPatch);
    },
    patchNode: async (name, ops: JsonPatchOp[]) => {
      await core.patchNode({ name, body: ops }, jsonPatch);
    },
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
        if (err instanceof ApiException && err.code === 404) return null;
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

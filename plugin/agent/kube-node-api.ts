/**
 * NodeApi over @kubernetes/client-node. Imported lazily by main.ts only when node status is on:
 * the client library alone costs ~60 MiB of RSS, which a standalone device plugin should not pay.
 */
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
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

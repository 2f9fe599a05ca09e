/**
 * NodeApi, EmuvNodeApi and UninstallApi over @kubernetes/client-node. Imported lazily by main.ts only when node status is on:
 * loading the client library adds about 86 MiB RSS to a bare Node process (bench/results/reconcile.json; 8 MiB
 * in the agent with its production V8 flags, docs/benchmarks.md), which a standalone device plugin should not pay.
 */
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  Observable,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type ConfigurationOptions,
  type ObservableMiddleware,
} from '@kubernetes/client-node';
import { GROUP, PLURAL_NODE, VERSION } from '../../common/contracts/emuv-node.ts';
import { unlessNotFound } from '../../common/kube/errors.ts';
import type { JsonPatchOp } from '../../common/kube/json-patch.ts';
import type { EmuvNodeApi, EmuvNodeView } from './emuv-node.ts';
import type { NodeApi, NodeView } from './node-status.ts';
import type { RemoveAgentsApi } from './remove-agents.ts';
import type { DaemonSetRef, DaemonSetView, UninstallApi } from './uninstall.ts';
import type { SliceApi, SliceView } from '../dra/slice-sync.ts';
import type { ClaimApi } from '../dra/driver.ts';
import { AGENT_POD_SELECTOR, AGENT_PORT_NAME, type AgentPodsApi } from '../top/cluster-source.ts';

// Re-exported so main.ts loads the client library with one lazy import.
export { loadKubeConfig } from '../../common/kube/config.ts';

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

/** GET of one DaemonSet; null on 404. */
function readDaemonSet(apps: AppsV1Api, options: ConfigurationOptions | undefined) {
  return async ({ namespace, name }: DaemonSetRef): Promise<DaemonSetView | null> =>
    unlessNotFound(apps.readNamespacedDaemonSet({ namespace, name }, options) as Promise<DaemonSetView>, null);
}

/** The calls made at SIGTERM (plugin/agent/uninstall.ts), each aborted after timeoutMs. */
export function createUninstallApi(kc: KubeConfig, timeoutMs: number): UninstallApi {
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const plain = withRequestTimeout(timeoutMs);
  return {
    ...createNodeApi(kc, { timeoutMs }),
    getDaemonSet: readDaemonSet(apps, plain),
    deleteEmuvNode: (name) =>
      unlessNotFound(
        custom.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL_NODE, name }, plain).then(() => true),
        false,
      ),
  };
}

/** `emuv remove-agents` (remove-agents.ts), each request aborted after timeoutMs. */
export function createRemoveAgentsApi(kc: KubeConfig, timeoutMs: number): RemoveAgentsApi {
  const apps = kc.makeApiClient(AppsV1Api);
  const plain = withRequestTimeout(timeoutMs);
  return {
    deleteDaemonSetForeground: ({ namespace, name }) =>
      unlessNotFound(
        apps.deleteNamespacedDaemonSet({ namespace, name, propagationPolicy: 'Foreground' }, plain).then(() => true),
        false,
      ),
    getDaemonSet: readDaemonSet(apps, plain),
  };
}

export function createEmuvNodeApi(kc: KubeConfig): EmuvNodeApi {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  return {
    get: (name) =>
      unlessNotFound(
        custom.getClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL_NODE, name }) as Promise<EmuvNodeView>,
        null,
      ),
    patchStatus: async (name, status) => {
      await custom.patchClusterCustomObjectStatus(
        { group: GROUP, version: VERSION, plural: PLURAL_NODE, name, body: { status } },
        mergePatch,
      );
    },
  };
}

const RESOURCE = { group: 'resource.k8s.io', version: 'v1' } as const;

/**
 * ResourceSlices and ResourceClaims through the generic custom-objects client: it sends and returns the
 * objects as plain JSON. The typed ResourceV1Api serialises through models generated from the 1.36 OpenAPI,
 * which drop every key they do not know (and spell requestPolicy.default `_default`), so fields newer than
 * the client would be lost on the way.
 */
export function createSliceApi(kc: KubeConfig): SliceApi {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const slices = { ...RESOURCE, plural: 'resourceslices' };
  const selector = (nodeName: string, driver: string) => `spec.nodeName=${nodeName},spec.driver=${driver}`;
  return {
    listSlices: async (nodeName, driver) =>
      ((await custom.listClusterCustomObject({ ...slices, fieldSelector: selector(nodeName, driver) })) as { items: SliceView[] }).items,
    createSlice: async (body) => (await custom.createClusterCustomObject({ ...slices, body })) as SliceView,
    replaceSlice: async (name, body) => (await custom.replaceClusterCustomObject({ ...slices, name, body })) as SliceView,
    deleteSlice: async (name) => {
      await unlessNotFound(custom.deleteClusterCustomObject({ ...slices, name }), null);
    },
    nodeUid: async (name) => {
      const uid = (await core.readNode({ name })).metadata?.uid;
      if (!uid) throw new Error(`Node ${name} has no UID`);
      return uid;
    },
    watchSlices: (nodeName, driver, onEvent) => {
      const watch = new Watch(kc);
      let stopped = false;
      let current: { abort(): void } | null = null;
      let retry: NodeJS.Timeout | null = null;
      const open = () => {
        if (stopped) return;
        watch
          .watch(
            '/apis/resource.k8s.io/v1/resourceslices',
            { fieldSelector: selector(nodeName, driver) },
            () => onEvent(),
            () => {
              // The apiserver ends watches every few minutes, and a dropped connection ends one too: open
              // another after a second (the resync timer covers anything missed in between).
              if (!stopped) retry = setTimeout(open, 1000).unref();
            },
          )
          .then(
            (req) => (current = req),
            () => {
              if (!stopped) retry = setTimeout(open, 1000).unref();
            },
          );
      };
      open();
      return () => {
        stopped = true;
        if (retry) clearTimeout(retry);
        current?.abort();
      };
    },
  };
}

export function createClaimApi(kc: KubeConfig): ClaimApi {
  const custom = kc.makeApiClient(CustomObjectsApi);
  return {
    getClaim: (namespace, name) =>
      unlessNotFound(
        custom.getNamespacedCustomObject({ ...RESOURCE, plural: 'resourceclaims', namespace, name }) as Promise<unknown>,
        null,
      ),
  };
}

/** `emuv top --agents-namespace` (top/cluster-source.ts): the agent pods, and their /status through the pod proxy. */
export function createAgentPodsApi(kc: KubeConfig, timeoutMs: number): AgentPodsApi {
  const core = kc.makeApiClient(CoreV1Api);
  const plain = withRequestTimeout(timeoutMs);
  return {
    server: kc.getCurrentCluster()?.server ?? 'the apiserver',
    listAgentPods: async (namespace) => {
      const list = await core.listNamespacedPod({ namespace, labelSelector: AGENT_POD_SELECTOR }, plain);
      return list.items.flatMap((p) => {
        const port = p.spec?.containers.flatMap((c) => c.ports ?? []).find((x) => x.name === AGENT_PORT_NAME)?.containerPort;
        if (!p.metadata?.name || !p.spec?.nodeName || port === undefined || p.metadata.deletionTimestamp) return [];
        const ready = p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
        return [{ name: p.metadata.name, node: p.spec.nodeName, port, ready }];
      });
    },
    proxyGet: async (namespace, pod, port, path) => {
      // Typed as a string, but the client parses a body served as application/json (the agent's /status is):
      // what comes back is the text, or the value parsed from it, which goes back to text for one strict parser.
      const body: unknown = await core.connectGetNamespacedPodProxyWithPath({ name: `${pod}:${port}`, namespace, path }, plain);
      return typeof body === 'string' ? body : JSON.stringify(body);
    },
  };
}

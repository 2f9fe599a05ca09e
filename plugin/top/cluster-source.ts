/**
 * `emuv top --agents-namespace emuv-system`: every node's agent through the Kubernetes API, no port-forward.
 * The agents are the chart's DaemonSet pods in that namespace; each one's /status is read through the
 * apiserver's pod proxy (`pods/proxy`, the access `kubectl port-forward` needs too). One node is shown at a
 * time; `pick` moves to another, in node-name order. The pod list is read again every `relistMs` and after a
 * failed fetch, so nodes that join or leave (and agents that restart under a new name) are followed.
 */
import { parseStatusDocument, type StatusSource } from './sources.ts';

/**
 * The agent pods' labels as the chart sets them (helm/emuv/templates/agent-daemonset.yaml; test/delivery/chart.test.ts
 * holds the chart to it).
 */
export const AGENT_POD_SELECTOR = 'app.kubernetes.io/name=emuv,app.kubernetes.io/component=agent';
/** The agent container's port that serves /metrics and /status. */
export const AGENT_PORT_NAME = 'metrics';

export interface AgentPod {
  name: string;
  node: string;
  /** The agent container's port named `metrics` (it serves /status too). */
  port: number;
  ready: boolean;
}

/** What the cluster source needs of the Kubernetes API (plugin/agent/kube-node-api.ts implements it). */
export interface AgentPodsApi {
  /** The agent pods in `namespace` (the chart's labels select them). */
  listAgentPods(namespace: string): Promise<AgentPod[]>;
  /** GET `path` of the pod through the apiserver's proxy; the body as text. */
  proxyGet(namespace: string, pod: string, port: number, path: string): Promise<string>;
  /** The apiserver, for the title. */
  server: string;
}

export function clusterSource(api: AgentPodsApi, namespace: string, o: { relistMs?: number; now?: () => number } = {}): StatusSource {
  const relistMs = o.relistMs ?? 10_000;
  const now = o.now ?? Date.now;
  let pods: AgentPod[] = [];
  let listedAt = Number.NEGATIVE_INFINITY;
  let current: string | null = null; // a node name: stays put when pods come and go
  let shownPod = '';
  let pending = 0;

  const relist = async () => {
    pods = (await api.listAgentPods(namespace)).sort((a, b) => a.node.localeCompare(b.node) || a.name.localeCompare(b.name));
    listedAt = now();
  };
  const nodes = () => [...new Set(pods.map((p) => p.node))];
  const describe = () => {
    const ns = nodes();
    const at = current === null ? -1 : ns.indexOf(current);
    return at < 0
      ? `agents in ${namespace} via ${api.server}`
      : `node ${current} (${at + 1}/${ns.length}, [ ] other nodes): pod ${namespace}/${shownPod} via ${api.server}`;
  };

  return {
    get describe() {
      return describe();
    },
    pick(step) {
      pending += step;
    },
    async fetch() {
      if (now() - listedAt >= relistMs || pods.length === 0) await relist();
      const ns = nodes();
      if (ns.length === 0)
        throw new Error(`no emuv agent pods in namespace ${namespace} (is the chart installed there? kubectl -n ${namespace} get pods)`);
      let at = current === null ? 0 : Math.max(0, ns.indexOf(current));
      at = (((at + pending) % ns.length) + ns.length) % ns.length;
      pending = 0;
      current = ns[at]!;
      // A node can have two agent pods for a moment (a rolling update): the ready one answers.
      const candidates = pods.filter((p) => p.node === current).sort((a, b) => Number(b.ready) - Number(a.ready));
      const pod = candidates[0]!;
      shownPod = pod.name;
      try {
        return parseStatusDocument(
          await api.proxyGet(namespace, pod.name, pod.port, 'status'),
          `agent ${namespace}/${pod.name} on ${current}`,
        );
      } catch (err) {
        listedAt = Number.NEGATIVE_INFINITY; // the pod may be gone: list again next time
        throw err;
      }
    },
    close: () => {},
  };
}

/**
 * Names the operator, its manifests (deploy/webhook) and the chart must agree on. Defaults; the
 * namespace and names can be changed through OperatorConfig, the manifests carry these values.
 */
export const DEFAULT_NAMESPACE = 'emuv-system';
export const WEBHOOK_SERVICE = 'emuv-webhook';
export const WEBHOOK_CONFIGURATION = 'emuv';
export const WEBHOOK_NAME = 'pods.emuv.io';
export const WEBHOOK_PATH = '/mutate-pods';
export const WEBHOOK_SECRET = 'emuv-webhook-tls';
export const LEADER_LEASE = 'emuv-operator';
export const AGENT_SERVICE_ACCOUNT = 'emuv-agent';
/** Set on the node-bound service-account tokens of pods (ServiceAccountTokenPodNodeInfo). */
export const USER_EXTRA_NODE_NAME = 'authentication.kubernetes.io/node-name';

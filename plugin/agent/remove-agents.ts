/**
 * `emuv remove-agents`, the Helm chart's pre-delete hook: deletes the agent DaemonSet in the foreground
 * and waits until it is gone, before Helm deletes anything else.
 *
 * Why a hook: an agent cleans its node at SIGTERM only when it can see that its DaemonSet is gone or
 * being deleted (uninstall.ts). A plain `helm uninstall` deletes the DaemonSet and, in the same breath, the
 * agent's ServiceAccount and RBAC, so by the time the agents get SIGTERM they can no longer ask and leave
 * everything in place. Deleted here with propagationPolicy=Foreground, the DaemonSet stays visible with a
 * deletionTimestamp until the garbage collector has removed its pods, that is until every agent has
 * finished its cleanup and exited, while the RBAC it needs still exists.
 */
import type { DaemonSetRef, DaemonSetView } from './uninstall.ts';

export interface RemoveAgentsApi {
  /** DELETE with propagationPolicy=Foreground; false when there was no such DaemonSet (404). */
  deleteDaemonSetForeground(ref: DaemonSetRef): Promise<boolean>;
  /** The DaemonSet, or null on 404. */
  getDaemonSet(ref: DaemonSetRef): Promise<DaemonSetView | null>;
}

export interface RemoveAgentsResult {
  /** gone: the DaemonSet and its pods are gone; absent: there was none; timeout: still there at the deadline. */
  outcome: 'gone' | 'absent' | 'timeout';
  waitedMs: number;
}

export async function removeAgents(
  api: RemoveAgentsApi,
  ref: DaemonSetRef,
  opts: { timeoutMs: number; pollMs?: number; now?: () => number; sleep?: (ms: number) => Promise<void> },
): Promise<RemoveAgentsResult> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const started = now();
  if (!(await api.deleteDaemonSetForeground(ref))) return { outcome: 'absent', waitedMs: 0 };
  for (;;) {
    // A transient API error is not an answer: keep asking until the deadline.
    const ds = await api.getDaemonSet(ref).catch(() => undefined);
    if (ds === null) return { outcome: 'gone', waitedMs: now() - started };
    if (now() - started >= opts.timeoutMs) return { outcome: 'timeout', waitedMs: now() - started };
    await sleep(opts.pollMs ?? 1000);
  }
}

/**
 * Uninstall: on SIGTERM, decide whether emuv itself is going away and, if it is, remove what the agent
 * put on its node. `helm uninstall` deletes the agent's DaemonSet and the garbage collector then deletes
 * its pods, so at SIGTERM a DaemonSet that is gone (404) or being deleted (deletionTimestamp) means
 * uninstall. A DaemonSet that exists means a rolling update, a drain or an eviction: the next agent
 * takes over what is there, and removing the node's capacity meanwhile would only disturb scheduling.
 * When the API cannot say, nothing is removed either: leaving emuv's traces on a node that keeps emuv
 * is harmless, stripping a node that keeps emuv is not.
 *
 * The decision and each step are small functions over injected APIs and paths; `armUninstall` (at start)
 * and `uninstallOnStop` (at SIGTERM) are what agent.ts composes.
 * Steps are independent: one that fails is reported and the others still run.
 */
import { lstatSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { LABEL_GPU_COUNT, LABEL_GPU_PRODUCT, RESOURCE_VRAM_VIRTUAL } from '../../common/contracts/resources.ts';
import type { LogFields, Logger } from '../../common/log.ts';
import { isAllocId } from '../deviceplugin/allocate.ts';
import { installedPaths, TEMP_INFIX } from './interposer-install.ts';
import { pointer, type JsonPatchOp } from '../../common/kube/json-patch.ts';
import type { NodeApi, NodeView } from './node-status.ts';

/** The DaemonSet that runs this agent (`--owner-daemonset=<namespace>/<name>`). */
export interface DaemonSetRef {
  namespace: string;
  name: string;
}

/** The parts of a DaemonSet the decision reads. */
export interface DaemonSetView {
  metadata?: { deletionTimestamp?: Date | string | null };
}

/** The Kubernetes calls of the uninstall path; implemented over @kubernetes/client-node in kube-node-api.ts. */
export interface UninstallApi extends NodeApi {
  /** The DaemonSet, or null when the API answers 404. Rejects on any other answer, and on none. */
  getDaemonSet(ref: DaemonSetRef): Promise<DaemonSetView | null>;
  /** Deletes this node's EmuvNode; false when there was none (404). */
  deleteEmuvNode(name: string): Promise<boolean>;
}

export type StopDecision =
  | { uninstall: true; reason: 'daemonset-gone' | 'daemonset-deleting' }
  | { uninstall: false; reason: 'daemonset-exists' }
  | { uninstall: false; reason: 'api-error'; error: string };

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Rejects with a message naming `what` when `p` has not settled within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Whether this SIGTERM is an uninstall. The timeout is ours as well as the API's: a call that never
 * answers must not spend the pod's grace period.
 */
export async function decideOnStop(api: Pick<UninstallApi, 'getDaemonSet'>, owner: DaemonSetRef, timeoutMs: number): Promise<StopDecision> {
  try {
    const ds = await withTimeout(api.getDaemonSet(owner), timeoutMs, `GET daemonset ${owner.namespace}/${owner.name}`);
    if (ds === null) return { uninstall: true, reason: 'daemonset-gone' };
    if (ds.metadata?.deletionTimestamp) return { uninstall: true, reason: 'daemonset-deleting' };
    return { uninstall: false, reason: 'daemonset-exists' };
  } catch (err) {
    return { uninstall: false, reason: 'api-error', error: message(err) };
  }
}

// ---- the steps ----

/** What step 1 needs of the device plugin: offer nothing, then stop serving and remove the socket. */
export interface DevicePluginControl {
  withdraw(): void;
  stop(): Promise<void>;
}

/**
 * Step 1: the open ListAndWatch streams get an empty device list (the kubelet sets emuv.io/vgpu to 0 at
 * once), and after `flushMs` (time for that message to leave the socket before the server is torn down)
 * the server stops and its socket is removed.
 */
export async function withdrawDevicePlugin(plugin: DevicePluginControl, flushMs: number): Promise<LogFields> {
  plugin.withdraw();
  await new Promise((r) => setTimeout(r, flushMs));
  await plugin.stop();
  return {};
}

/** JSON patch removing emuv.io/vram-virtual from status.capacity and status.allocatable, where present. */
export function uninstallStatusPatch(node: NodeView): JsonPatchOp[] {
  return (['capacity', 'allocatable'] as const)
    .filter((field) => node.status?.[field] && RESOURCE_VRAM_VIRTUAL in node.status[field])
    .map((field) => ({ op: 'remove', path: pointer('status', field, RESOURCE_VRAM_VIRTUAL) }));
}

/** JSON patch removing the labels the agent sets, where present. */
export function uninstallLabelPatch(node: NodeView): JsonPatchOp[] {
  const labels = node.metadata?.labels ?? {};
  return [LABEL_GPU_COUNT, LABEL_GPU_PRODUCT]
    .filter((label) => label in labels)
    .map((label) => ({ op: 'remove', path: pointer('metadata', 'labels', label) }));
}

/**
 * Step 2: emuv.io/vram-virtual out of the Node's status, the agent's labels off the Node. Only keys that
 * are there are removed (a JSON patch removing a missing member fails as a whole).
 */
export async function removeNodeStatus(api: NodeApi, nodeName: string): Promise<LogFields> {
  const node = await api.getNode(nodeName);
  const status = uninstallStatusPatch(node);
  const labels = uninstallLabelPatch(node);
  // Both patches are tried even when the first fails: each leaves less behind.
  const failed: string[] = [];
  if (status.length > 0) await api.patchNodeStatus(nodeName, status).catch((err: unknown) => failed.push(`status: ${message(err)}`));
  if (labels.length > 0) await api.patchNode(nodeName, labels).catch((err: unknown) => failed.push(`labels: ${message(err)}`));
  if (failed.length > 0) throw new Error(failed.join('; '));
  return { statusKeysRemoved: status.length, labelsRemoved: labels.length };
}

/**
 * Step 3: this node's EmuvNode. The operator deletes EmuvNodes of nodes without the emuv.io/gpu.count
 * label too; this covers an operator that is already gone.
 */
export async function deleteOwnEmuvNode(api: Pick<UninstallApi, 'deleteEmuvNode'>, nodeName: string): Promise<LogFields> {
  return { deleted: await api.deleteEmuvNode(nodeName) };
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Removes each path that exists (a symlink itself, never its target); throws naming every one that could not be removed. */
function removeAll(paths: readonly string[]): string[] {
  const removed: string[] = [];
  const failed: string[] = [];
  for (const p of paths) {
    if (!exists(p)) continue;
    try {
      rmSync(p, { recursive: true, force: true });
      removed.push(p);
    } catch (err) {
      failed.push(`${p}: ${message(err)}`);
    }
  }
  if (failed.length > 0) throw new Error(`could not remove ${failed.join('; ')}`);
  return removed;
}

/**
 * Step 4a: the interposer files the agent installed (libraries, real-driver links, ld.so.preload,
 * leftovers of an interrupted install) and the library directory once it is empty. Not
 * <interposer-dir> itself: it is the agent container's hostPath mount point.
 */
export function removeInterposerFiles(interposerDir: string): LogFields {
  const { libDir, files } = installedPaths(interposerDir);
  const leftovers = (dir: string) => {
    const names = new Set(files.filter((f) => dirname(f) === dir).map((f) => basename(f)));
    try {
      return readdirSync(dir)
        .filter((n) => {
          const i = n.lastIndexOf(TEMP_INFIX);
          return i > 0 && names.has(n.slice(0, i)) && /^[0-9]+$/.test(n.slice(i + TEMP_INFIX.length));
        })
        .map((n) => join(dir, n));
    } catch {
      return [];
    }
  };
  const removed = removeAll([...files, ...leftovers(libDir), ...leftovers(interposerDir)]);
  let libDirRemoved = false;
  if (exists(libDir) && readdirSync(libDir).length === 0) {
    rmdirSync(libDir);
    libDirRemoved = true;
  }
  return { removed: removed.length, libDirRemoved };
}

/**
 * Step 4b: the per-allocation stats directories under the state directory: only names the device
 * plugin makes (a mistaken --state-dir must not cost someone else's files), and not the state
 * directory itself (the agent container's hostPath mount point).
 */
export function removeStatsDirectories(stateDir: string): LogFields {
  let names: string[];
  try {
    names = readdirSync(stateDir);
  } catch {
    return { removed: 0 }; // no state directory: nothing was ever allocated
  }
  const dirs = names.filter((n) => isAllocId(n) && lstatSync(join(stateDir, n), { throwIfNoEntry: false })?.isDirectory());
  return { removed: removeAll(dirs.map((n) => join(stateDir, n))).length, kept: names.length - dirs.length };
}

// ---- running them ----

export interface UninstallStep {
  name: string;
  /** Steps on local files run even past the deadline: they take milliseconds and need no network. */
  local?: boolean;
  run(): Promise<LogFields> | LogFields;
}

export interface StepOutcome {
  step: string;
  outcome: 'done' | 'failed' | 'skipped';
  detail?: LogFields;
  error?: string;
}

/** The steps in their order: device plugin, DRA, node status and labels, EmuvNode, interposer files, stats directories. */
export function uninstallSteps(o: {
  plugin: DevicePluginControl;
  flushMs: number;
  /** The DRA part, with --dra=on: its slice deleted, its claims' CDI specs and stats directories removed. */
  dra?: { withdraw(): Promise<LogFields> } | null;
  api: UninstallApi;
  nodeName: string;
  interposerDir: string;
  stateDir: string;
}): UninstallStep[] {
  return [
    { name: 'device plugin', run: () => withdrawDevicePlugin(o.plugin, o.flushMs) },
    ...(o.dra ? [{ name: 'DRA slice and claims', run: () => o.dra!.withdraw() }] : []),
    { name: 'node status and labels', run: () => removeNodeStatus(o.api, o.nodeName) },
    { name: 'EmuvNode', run: () => deleteOwnEmuvNode(o.api, o.nodeName) },
    { name: 'interposer files', local: true, run: () => removeInterposerFiles(o.interposerDir) },
    { name: 'stats directories', local: true, run: () => removeStatsDirectories(o.stateDir) },
  ];
}

/**
 * Runs the steps in order, each on its own: a failure is logged and the next step runs. A step that
 * needs the network is skipped once `deadline` (epoch ms) has passed, and given up when it is reached,
 * so that the whole fits in the pod's grace period.
 */
export async function runUninstallSteps(
  steps: readonly UninstallStep[],
  o: { deadline: number; logger: Logger; now?: () => number },
): Promise<StepOutcome[]> {
  const now = o.now ?? Date.now;
  const outcomes: StepOutcome[] = [];
  for (const step of steps) {
    const left = o.deadline - now();
    if (!step.local && left <= 0) {
      o.logger.warn('uninstall step skipped: deadline reached', { step: step.name });
      outcomes.push({ step: step.name, outcome: 'skipped' });
      continue;
    }
    try {
      const run = Promise.resolve().then(() => step.run());
      const detail = step.local ? await run : await withTimeout(run, left, `uninstall step "${step.name}"`);
      o.logger.info('uninstall step done', { step: step.name, ...detail });
      outcomes.push({ step: step.name, outcome: 'done', detail });
    } catch (err) {
      const error = message(err);
      o.logger.warn('uninstall step failed', { step: step.name, err: error });
      outcomes.push({ step: step.name, outcome: 'failed', error });
    }
  }
  return outcomes;
}

// ---- the agent's part: armed at start, run at SIGTERM ----

/** What terminate() needs to tell an uninstall from a restart. */
export interface ArmedUninstall {
  api: UninstallApi;
  owner: DaemonSetRef;
}

/**
 * At start: whether the cleanup at SIGTERM is on. It needs the API (to tell an uninstall from a restart)
 * and a DaemonSet that exists now: a name of no DaemonSet would read as "uninstalled" at every restart and
 * wipe the node. Null: nothing is removed at SIGTERM beyond what every stop removes.
 */
export async function armUninstall(o: {
  owner: DaemonSetRef | null;
  nodeStatus: boolean;
  api: UninstallApi | undefined;
  timeoutMs: number;
  logger: Logger;
}): Promise<ArmedUninstall | null> {
  if (!o.owner) return null;
  if (!o.nodeStatus) {
    o.logger.info('no uninstall cleanup: with --node-status=off nothing can tell an uninstall from a restart, so nothing is removed');
    return null;
  }
  if (!o.api) throw new Error('--owner-daemonset is set but no Kubernetes API for it was given');
  const daemonSet = `${o.owner.namespace}/${o.owner.name}`;
  const atStart = await decideOnStop(o.api, o.owner, o.timeoutMs);
  if (atStart.reason === 'daemonset-gone') {
    o.logger.error('--owner-daemonset names no DaemonSet: uninstall cleanup is off until the flag is fixed', { daemonSet });
    return null;
  }
  if (atStart.reason === 'api-error')
    o.logger.warn('cannot read the owner DaemonSet now; it is asked again at SIGTERM', { daemonSet, err: atStart.error });
  return { api: o.api, owner: o.owner };
}

/**
 * At SIGTERM: asks whether the DaemonSet is gone or being deleted; if so, stops the loops that publish
 * (a pass in flight finishes first, so nothing re-publishes what the steps remove) and runs the steps
 * within `deadlineMs` of being called. Otherwise leaves the node as it is, saying why.
 */
export async function uninstallOnStop(
  armed: ArmedUninstall,
  o: {
    /** Stops every loop that writes to the node, the Node or the EmuvNode, after its pass in flight. */
    haltLoops: () => Promise<void>;
    plugin: DevicePluginControl;
    dra?: { withdraw(): Promise<LogFields> } | null;
    nodeName: string;
    interposerDir: string;
    stateDir: string;
    ownerCheckTimeoutMs: number;
    deadlineMs: number;
    flushMs: number;
    logger: Logger;
  },
): Promise<void> {
  const started = Date.now();
  const daemonSet = `${armed.owner.namespace}/${armed.owner.name}`;
  const decision = await decideOnStop(armed.api, armed.owner, o.ownerCheckTimeoutMs);
  if (!decision.uninstall) {
    if (decision.reason === 'daemonset-exists')
      o.logger.info('owner DaemonSet exists (rolling update, drain or eviction): leaving the node as it is', { daemonSet });
    else o.logger.warn('cannot tell whether emuv is being uninstalled: leaving the node as it is', { daemonSet, err: decision.error });
    return;
  }
  o.logger.info('emuv is being uninstalled: removing what the agent put on this node', { daemonSet, reason: decision.reason });
  await o.haltLoops();
  const outcomes = await runUninstallSteps(
    uninstallSteps({
      plugin: o.plugin,
      dra: o.dra,
      flushMs: o.flushMs,
      api: armed.api,
      nodeName: o.nodeName,
      interposerDir: o.interposerDir,
      stateDir: o.stateDir,
    }),
    { deadline: started + o.deadlineMs, logger: o.logger.child({ module: 'uninstall' }) },
  );
  const failed = outcomes.filter((x) => x.outcome !== 'done').map((x) => x.step);
  if (failed.length > 0) o.logger.warn('uninstall cleanup incomplete', { daemonSet, failed });
  else o.logger.info('uninstall cleanup done', { daemonSet });
}

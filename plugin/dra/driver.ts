/**
 * emuv's DRA driver: NodePrepareResources and NodeUnprepareResources on the host. Prepare reads the claim
 * from the apiserver (the kubelet sends only its namespace, name and UID), checks it (claim.ts), makes the
 * stats directory, writes the claim's CDI spec and checkpoints it; unprepare removes all three. Both are
 * idempotent and run one at a time (the kubelet may call them concurrently; the checkpoint is one file).
 */
import { rmSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../common/log.ts';
import { errFields } from '../../common/log.ts';
import { statsDirFor, type AllocateEnvironment } from '../deviceplugin/allocate.ts';
import type { Inventory } from '../inventory/inventory.ts';
import { cdiSpec, cdiSpecFile, ClaimError, preparedClaim, type ClaimRef, type PreparedClaim } from './claim.ts';
import type { ClaimCheckpoint } from './checkpoint.ts';
import type { DraDriver, PrepareOutcome } from './kubelet-plugin.ts';

/** The one call the driver makes: GET of a ResourceClaim; null when it does not exist. */
export interface ClaimApi {
  getClaim(namespace: string, name: string): Promise<unknown>;
}

export interface EmuvDraDriverDeps {
  nodeName: string;
  inventory: () => Inventory;
  environment: () => AllocateEnvironment;
  cdiDir: string;
  stateDir: string;
  checkpoint: ClaimCheckpoint;
  api: ClaimApi;
  /** Makes a fresh stats directory for an allocation ID (plugin/deviceplugin/host-prep.ts). */
  prepareStatsDir: (allocId: string) => void;
  logger: Logger;
  /** Called after the set of prepared claims changed (usage and /status show them). */
  onChange?: () => void;
}

export class EmuvDraDriver implements DraDriver {
  readonly #d: EmuvDraDriverDeps;
  readonly #claims: Map<string, PreparedClaim>;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(deps: EmuvDraDriverDeps) {
    this.#d = deps;
    this.#claims = deps.checkpoint.load();
  }

  /** The prepared claims, for usage, metrics and /status. */
  prepared(): PreparedClaim[] {
    return [...this.#claims.values()];
  }

  /** One operation at a time: each waits for the previous, whatever its outcome. */
  #serial<T>(op: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(op, op);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  prepare(claims: ClaimRef[]): Promise<Map<string, PrepareOutcome>> {
    return this.#serial(async () => {
      const out = new Map<string, PrepareOutcome>();
      let changed = false;
      for (const ref of claims) {
        try {
          const known = this.#claims.get(ref.uid);
          const claim = known ?? (await this.#prepareNew(ref));
          if (!known) changed = true;
          out.set(ref.uid, { devices: kubeletDevices(claim) });
        } catch (err) {
          const message =
            err instanceof ClaimError ? err.message : `preparing ResourceClaim ${ref.namespace}/${ref.name}: ${(err as Error).message}`;
          this.#d.logger.warn('claim not prepared', { claim: `${ref.namespace}/${ref.name}`, uid: ref.uid, ...errFields(err) });
          out.set(ref.uid, { error: message });
        }
      }
      if (changed) this.#changed();
      return out;
    });
  }

  async #prepareNew(ref: ClaimRef): Promise<PreparedClaim> {
    const obj = await this.#d.api.getClaim(ref.namespace, ref.name);
    if (obj === null || obj === undefined) throw new ClaimError(`ResourceClaim ${ref.namespace}/${ref.name} does not exist`);
    const inventory = this.#d.inventory();
    const claim = preparedClaim(obj, ref, this.#d.nodeName, inventory);
    for (const d of claim.devices) this.#d.prepareStatsDir(d.allocId);
    writeAtomically(
      this.#d.cdiDir,
      cdiSpecFile(claim.uid),
      `${JSON.stringify(cdiSpec(claim, inventory, this.#d.environment()), null, 1)}\n`,
    );
    // Checkpointed before the kubelet hears of it: a claim the kubelet thinks prepared is always on disk.
    this.#claims.set(claim.uid, claim);
    this.#d.checkpoint.save(this.#claims);
    this.#d.logger.info('claim prepared', {
      claim: `${claim.namespace}/${claim.name}`,
      uid: claim.uid,
      devices: claim.devices.map((d) => `${d.device}:${d.limitBytes}`),
      pods: claim.pods,
    });
    return claim;
  }

  unprepare(claims: ClaimRef[]): Promise<Map<string, { error?: string }>> {
    return this.#serial(async () => {
      const out = new Map<string, { error?: string }>();
      let changed = false;
      for (const ref of claims) {
        try {
          const known = this.#claims.get(ref.uid);
          rmSync(join(this.#d.cdiDir, cdiSpecFile(ref.uid)), { force: true });
          for (const d of known?.devices ?? []) rmSync(statsDirFor(this.#d.stateDir, d.allocId), { recursive: true, force: true });
          if (known) {
            this.#claims.delete(ref.uid);
            this.#d.checkpoint.save(this.#claims);
            changed = true;
            this.#d.logger.info('claim unprepared', { claim: `${ref.namespace}/${ref.name}`, uid: ref.uid });
          }
          out.set(ref.uid, {});
        } catch (err) {
          this.#d.logger.warn('claim not unprepared', { claim: `${ref.namespace}/${ref.name}`, uid: ref.uid, ...errFields(err) });
          out.set(ref.uid, { error: `unpreparing ResourceClaim ${ref.namespace}/${ref.name}: ${(err as Error).message}` });
        }
      }
      if (changed) this.#changed();
      return out;
    });
  }

  /** Removes every CDI spec and stats directory of a prepared claim, and the checkpoint (uninstall). */
  removeAll(): Promise<number> {
    return this.#serial(async () => {
      const uids = [...this.#claims.keys()];
      for (const uid of uids) {
        const c = this.#claims.get(uid)!;
        rmSync(join(this.#d.cdiDir, cdiSpecFile(uid)), { force: true });
        for (const d of c.devices) rmSync(statsDirFor(this.#d.stateDir, d.allocId), { recursive: true, force: true });
        this.#claims.delete(uid);
      }
      rmSync(this.#d.checkpoint.file, { force: true });
      if (uids.length > 0) this.#changed();
      return uids.length;
    });
  }

  /** Tells onChange that the set of prepared claims changed. */
  #changed(): void {
    this.#d.onChange?.();
  }
}

function kubeletDevices(claim: PreparedClaim) {
  return claim.devices.map((d) => ({
    requestNames: d.request ? [d.request] : [],
    poolName: d.pool,
    deviceName: d.device,
    cdiDeviceIds: [d.cdiDevice],
    ...(d.shareId ? { shareId: d.shareId } : {}),
  }));
}

/**
 * Writes a file whole or not at all: the container runtime watches the CDI directory and must never read a
 * half-written spec. The temporary name ends in .tmp, which the CDI cache ignores (it reads .json and .yaml).
 */
function writeAtomically(dir: string, name: string, text: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = join(dir, `${name}.tmp`);
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, join(dir, name));
}

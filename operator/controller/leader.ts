/**
 * Leader election through a coordination.k8s.io/v1 Lease, with client-go's rules:
 * - a lease is expired when its record has not changed for leaseDuration as measured by *our* clock
 *   since we last saw it change (no trust in the other replica's clock);
 * - every write carries the resourceVersion we read, so two candidates cannot both win (409 loses);
 * - a leader that cannot renew within renewDeadline stops leading (the caller exits, and the restarted
 *   process campaigns again with empty caches).
 */
import { isConflict } from '../../common/kube/errors.ts';
import { errFields, type Logger } from '../../common/log.ts';
import type { Clock } from '../clock.ts';
import type { Lease, LeaseApi } from '../kube/api.ts';

export interface LeaderConfig {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

export class LeaderElector {
  private readonly api: LeaseApi;
  private readonly clock: Clock;
  private readonly cfg: Required<LeaderConfig>;
  private readonly log: Logger;
  private observed: { record: string; at: number } | undefined;
  private leading = false;
  private lastRenew = 0;
  private timer: unknown;
  private stopped = false;

  constructor(deps: { api: LeaseApi; clock: Clock; config: LeaderConfig; logger: Logger }) {
    this.api = deps.api;
    this.clock = deps.clock;
    this.cfg = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...deps.config };
    this.log = deps.logger;
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** One acquire-or-renew attempt. Returns whether we hold the lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.clock.now();
    const nowIso = new Date(now).toISOString();
    const { namespace, name, identity } = this.cfg;
    const durationS = Math.ceil(this.cfg.leaseDurationMs / 1000);
    try {
      const cur = await this.api.getLease(namespace, name);
      if (!cur) {
        await this.api.createLease({
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: durationS, acquireTime: nowIso, renewTime: nowIso, leaseTransitions: 0 },
        });
        this.observe(undefined, now);
        return this.held(now);
      }
      const record = JSON.stringify(cur.spec);
      if (!this.observed || this.observed.record !== record) this.observe(record, now);
      const holder = cur.spec.holderIdentity;
      const mine = holder === identity;
      const durationMs = (cur.spec.leaseDurationSeconds ?? durationS) * 1000;
      const expired = !holder || now >= this.observed!.at + durationMs;
      if (!mine && !expired) return this.lost();
      const next: Lease = {
        metadata: { name, namespace, ...(cur.metadata.resourceVersion ? { resourceVersion: cur.metadata.resourceVersion } : {}) },
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: durationS,
          acquireTime: mine ? (cur.spec.acquireTime ?? nowIso) : nowIso,
          renewTime: nowIso,
          leaseTransitions: (cur.spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
        },
      };
      const written = await this.api.replaceLease(next);
      this.observe(JSON.stringify(written.spec), now);
      return this.held(now);
    } catch (err) {
      if (isConflict(err)) return this.lost(); // a lost update race, or a create that another replica won
      this.log.warn('failed to acquire or renew lease', errFields(err));
      // A transient error does not end leadership until the renew deadline passes.
      if (this.leading && now - this.lastRenew < this.cfg.renewDeadlineMs) return true;
      return this.lost();
    }
  }

  /**
   * Campaigns every retryPeriod; calls onStartedLeading once when the lease is won and onStoppedLeading
   * once when it is lost (after which this elector stops).
   */
  run(callbacks: { onStartedLeading: () => void; onStoppedLeading: () => void }): void {
    const tick = async () => {
      if (this.stopped) return;
      const was = this.leading;
      const now = await this.tryAcquireOrRenew();
      if (this.stopped) return;
      if (!was && now) {
        this.log.info('became leader', { identity: this.cfg.identity });
        callbacks.onStartedLeading();
      } else if (was && !now) {
        this.log.warn('lost leadership', { identity: this.cfg.identity });
        this.stopped = true;
        callbacks.onStoppedLeading();
        return;
      }
      this.timer = this.clock.setTimeout(() => void tick(), this.cfg.retryPeriodMs);
    };
    void tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
  }

  private observe(record: string | undefined, at: number): void {
    this.observed = { record: record ?? '', at };
  }

  private held(now: number): boolean {
    this.leading = true;
    this.lastRenew = now;
    return true;
  }

  private lost(): boolean {
    this.leading = false;
    return false;
  }
}

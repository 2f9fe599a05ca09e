/**
 * The published device state: the current inventory plus per-GPU health. Subscribers (the
 * ListAndWatch streams) are told after every change and read the new immutable snapshot; nothing
 * hands out a structure that another task mutates.
 */
import { HEALTHY, UNHEALTHY, type Device } from '../../protos/deviceplugin.ts';
import type { Inventory } from '../inventory/inventory.ts';

export interface GpuHealth {
  healthy: boolean;
  /** Why unhealthy; null when healthy. */
  reason: string | null;
}

export type Listener = () => void;

export class DeviceState {
  #inventory: Inventory;
  #health = new Map<string, GpuHealth>();
  #listeners = new Set<Listener>();
  #devices: readonly Device[] = [];
  #withdrawn = false;
  #offered = true;

  constructor(inventory: Inventory) {
    this.#inventory = inventory;
    this.#rebuild();
  }

  get inventory(): Inventory {
    return this.#inventory;
  }

  /** The complete device list, as sent on ListAndWatch. */
  get devices(): readonly Device[] {
    return this.#devices;
  }

  health(address: string): GpuHealth {
    return this.#health.get(address) ?? { healthy: true, reason: null };
  }

  setInventory(inventory: Inventory): void {
    this.#inventory = inventory;
    this.#changed();
  }

  /** Updates the health of GPUs; notifies only when something changed. */
  setHealth(health: ReadonlyMap<string, GpuHealth>): boolean {
    let changed = false;
    for (const [addr, h] of health) {
      const prev = this.health(addr);
      if (prev.healthy !== h.healthy || prev.reason !== h.reason) changed = true;
      this.#health.set(addr, h);
    }
    if (changed) this.#changed();
    return changed;
  }

  /**
   * Offers no devices from now on (uninstall): every ListAndWatch stream is sent an empty list, so the
   * kubelet sets emuv.io/vgpu capacity and allocatable to 0 at once rather than only after its grace
   * period for a plugin that went away. Later inventory or health changes do not bring devices back.
   */
  withdraw(): void {
    this.#withdrawn = true;
    this.#changed();
  }

  /**
   * Whether the device plugin offers this node's GPUs (true) or DRA does (false): never both for the same
   * bytes. Off, the kubelet is sent an empty list (emuv.io/vgpu drops to 0), and node status publishes no
   * emuv.io/vram-virtual; allocations already made keep running. Reversible, unlike withdraw().
   */
  setDevicePluginOffered(offered: boolean): void {
    if (offered === this.#offered) return;
    this.#offered = offered;
    this.#changed();
  }

  get devicePluginOffered(): boolean {
    return this.#offered && !this.#withdrawn;
  }

  subscribe(fn: Listener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #changed(): void {
    this.#rebuild();
    for (const fn of [...this.#listeners]) fn();
  }

  #rebuild(): void {
    if (this.#withdrawn || !this.#offered) {
      this.#devices = Object.freeze([]);
      return;
    }
    this.#devices = Object.freeze(
      this.#inventory.gpus.flatMap((g) =>
        g.slots.map((s) => ({
          ID: s.id,
          health: this.health(g.address).healthy ? HEALTHY : UNHEALTHY,
          // No NUMA affinity (-1) is sent as no topology, which the kubelet reads as "any node".
          topology: g.numaNode >= 0 ? { nodes: [{ ID: g.numaNode }] } : null,
        })),
      ),
    );
  }
}

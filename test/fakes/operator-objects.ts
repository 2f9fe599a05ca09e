/** Test builders with sensible defaults. */
import type { EmuvNode, EmuvNodeSpec, EmuvPolicy, EmuvPolicySpec } from '../../operator/api/types.ts';
import { defaultedPolicySpec } from '../../operator/api/validate.ts';
import type { Lister } from '../../operator/controller/reconcile.ts';

export function policy(name: string, spec: Partial<EmuvPolicySpec> = {}, generation = 1): EmuvPolicy {
  return {
    apiVersion: 'emuv.io/v1alpha1',
    kind: 'EmuvPolicy',
    metadata: { name, generation, uid: `uid-${name}` },
    spec: defaultedPolicySpec(spec),
  };
}

export function node(name: string, labels: Record<string, string> = {}, gpu = true) {
  return { metadata: { name, uid: `uid-${name}`, labels: gpu ? { 'emuv.io/gpu.count': '1', ...labels } : labels } };
}

export function emuvNode(name: string, spec: EmuvNodeSpec, managed = true): EmuvNode {
  return {
    apiVersion: 'emuv.io/v1alpha1',
    kind: 'EmuvNode',
    metadata: { name, uid: `uid-en-${name}`, ...(managed ? { labels: { 'app.kubernetes.io/managed-by': 'emuv-operator' } } : {}) },
    spec,
  };
}

/** A Lister over a mutable array, keyed by metadata.name. */
export class ArrayLister<T> implements Lister<T> {
  items: T[];
  constructor(items: T[] = []) {
    this.items = items;
  }
  get(name: string): T | undefined {
    return this.items.find((i) => (i as { metadata?: { name?: string } }).metadata?.name === name);
  }
  list(): ReadonlyArray<T> {
    return this.items;
  }
}

/** Untyped JSON, for assertions deep inside patched objects in tests (the one `any` of the test code). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Loose = any;

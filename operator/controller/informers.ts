/**
 * Informer event handlers. They only enqueue keys (style P5): what to do is decided in reconcile.
 * A policy spec change (new generation), creation or deletion can move any node to another policy and
 * change every policy's counts, so it fans out to all node and policy keys; a Node matters only when it appears, disappears or relabels (its
 * status heartbeats are ignored); an EmuvNode change re-checks its own spec (drift repair).
 */

/** The part of a client-node Informer these handlers need. */
export interface InformerLike<T> {
  on(verb: 'add' | 'update' | 'delete', cb: (obj: T) => void): void;
}

export interface Named {
  metadata?: { name?: string; labels?: Record<string, string>; generation?: number };
}

export interface Enqueuer {
  add(key: string): void;
}

export interface KeySource {
  keysForAllNodes(): string[];
  keysForAllPolicies(): string[];
}

const fingerprint = (labels: Record<string, string> | undefined) =>
  JSON.stringify(Object.entries(labels ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)));

export function wireHandlers(
  informers: { policies: InformerLike<Named>; nodes: InformerLike<Named>; emuvNodes: InformerLike<Named> },
  queue: Enqueuer,
  keys: KeySource,
): void {
  const all = () => {
    for (const k of keys.keysForAllPolicies()) queue.add(k);
    for (const k of keys.keysForAllNodes()) queue.add(k);
  };
  // A status write by ourselves bumps resourceVersion but not generation: no fan-out for that, or every
  // policy status update would re-enqueue every node.
  const policyGenerations = new Map<string, number | undefined>();
  const policyChanged = (obj: Named, deleted: boolean) => {
    const name = obj.metadata?.name ?? '';
    const gen = obj.metadata?.generation;
    if (!deleted && policyGenerations.has(name) && policyGenerations.get(name) === gen && gen !== undefined) return;
    if (deleted) policyGenerations.delete(name);
    else policyGenerations.set(name, gen);
    all();
  };
  informers.policies.on('add', (o) => policyChanged(o, false));
  informers.policies.on('update', (o) => policyChanged(o, false));
  informers.policies.on('delete', (o) => policyChanged(o, true));

  const nodeLabels = new Map<string, string>();
  const nodeChanged = (obj: Named, deleted: boolean) => {
    const name = obj.metadata?.name;
    if (!name) return;
    const fp = fingerprint(obj.metadata?.labels);
    if (!deleted && nodeLabels.get(name) === fp) return;
    if (deleted) nodeLabels.delete(name);
    else nodeLabels.set(name, fp);
    queue.add(`node/${name}`);
    for (const k of keys.keysForAllPolicies()) queue.add(k);
  };
  informers.nodes.on('add', (o) => nodeChanged(o, false));
  informers.nodes.on('update', (o) => nodeChanged(o, false));
  informers.nodes.on('delete', (o) => nodeChanged(o, true));

  const emuvNodeChanged = (obj: Named) => {
    const name = obj.metadata?.name;
    if (name) queue.add(`node/${name}`);
  };
  for (const verb of ['add', 'update', 'delete'] as const) informers.emuvNodes.on(verb, emuvNodeChanged);
}

// What the local image build reads of the Dockerfile itself, so that the Dockerfile stays the one source: the
// base images its FROM lines pull (each needs a local recipe, base-images.ts) and its ENTRYPOINT (the agent's
// Node flags, which the chart must repeat).

/**
 * Docker's short names as buildah resolves them in its local store (`node:24-bookworm` is
 * docker.io/library/node:24-bookworm). Stage names (FROM js, FROM scratch) are not images.
 */
export function qualify(ref: string): string {
  const first = ref.split('/')[0]!;
  const hasRegistry = ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (hasRegistry) return ref;
  return ref.includes('/') ? `docker.io/${ref}` : `docker.io/library/${ref}`;
}

/** The images a Dockerfile's FROM lines pull (not its stages, not scratch), fully qualified. */
export function externalBases(dockerfile: string): string[] {
  const stages = new Set<string>();
  const bases: string[] = [];
  for (const line of dockerfile.split('\n')) {
    const m = /^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$/i.exec(line);
    if (!m) continue;
    const ref = m[1]!;
    if (ref !== 'scratch' && !stages.has(ref.toLowerCase()) && !bases.includes(qualify(ref))) bases.push(qualify(ref));
    if (m[2]) stages.add(m[2].toLowerCase());
  }
  return bases;
}

/** The last stage's exec-form ENTRYPOINT. */
export function dockerfileEntrypoint(dockerfile: string): string[] {
  const lines = [...dockerfile.matchAll(/^\s*ENTRYPOINT\s+(\[.*\])\s*$/gim)];
  if (lines.length === 0) throw new Error('the Dockerfile has no exec-form ENTRYPOINT');
  return JSON.parse(lines.at(-1)![1]!) as string[];
}

// The two images every cluster start loads into its node, so that no pod ever pulls from a registry: the pod
// sandbox (pause.c, as registry.k8s.io/pause) and the cluster tests' workload (probe.c, prints what the
// runtime gave it). Each is one static binary (gcc -static) in an otherwise empty root filesystem.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PAUSE_IMAGE, PROBE_IMAGE, type Paths } from '../cluster/layout.ts';
import { run } from '../cluster/process.ts';
import { buildOciArchive } from './oci-archive.ts';

export const NODE_IMAGES = [PAUSE_IMAGE, PROBE_IMAGE];

/** Compiles and packs both images under <run dir>/images; returns the OCI archives. */
export function buildNodeImages(p: Paths): string[] {
  const dir = path.join(p.runDir, 'images');
  const out: string[] = [];
  for (const [prog, name] of [
    ['pause', PAUSE_IMAGE],
    ['probe', PROBE_IMAGE],
  ] as const) {
    const rootfs = path.join(dir, `${prog}-rootfs`);
    for (const sub of ['dev', 'proc', 'sys', 'etc', 'tmp']) mkdirSync(path.join(rootfs, sub), { recursive: true });
    run('gcc', ['-static', '-O2', '-Wall', '-o', path.join(rootfs, prog), path.join(import.meta.dirname, `${prog}.c`)]);
    const archive = path.join(dir, `${prog}.oci.tar`);
    buildOciArchive({ rootfs, name, entrypoint: [`/${prog}`] }, archive);
    out.push(archive);
  }
  return out;
}

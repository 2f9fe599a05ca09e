// Packs a root filesystem directory into a single-layer OCI image archive (an OCI image layout in a tar),
// the format `ctr images import` reads. No registry, no image tooling: GNU tar for the byte streams, the
// JSON documents written here (OCI image spec v1: index, manifest, config, layer of media type
// application/vnd.oci.image.layer.v1.tar).
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface OciImage {
  /** Directory whose contents become the image's only layer. */
  rootfs: string;
  /** Full image reference, e.g. `registry.k8s.io/pause:3.10`. */
  name: string;
  entrypoint: string[];
  cmd?: string[];
  env?: string[];
  /** `uid:gid` the image's processes run as (OCI config User); root when absent. */
  user?: string;
  workingDir?: string;
  labels?: Record<string, string>;
}

const TAR_FLAGS = ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=posix'];
const TAR_PAX = ['--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime'];

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes `out` (a tar holding oci-layout, index.json and blobs/sha256/*). Deterministic for equal input. */
export function buildOciArchive(image: OciImage, out: string): { manifestDigest: string } {
  const work = `${out}.layout`;
  rmSync(work, { recursive: true, force: true });
  const blobs = path.join(work, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });

  const entries = readdirSync(image.rootfs).sort();
  const layerPath = path.join(work, 'layer.tar');
  execFileSync('tar', [...TAR_FLAGS, ...TAR_PAX, '-C', image.rootfs, '-cf', layerPath, ...entries]);
  const layer = readFileSync(layerPath);
  rmSync(layerPath);
  const layerDigest = sha256(layer);
  writeFileSync(path.join(blobs, layerDigest), layer);

  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {
        Entrypoint: image.entrypoint,
        ...(image.cmd ? { Cmd: image.cmd } : {}),
        Env: image.env ?? ['PATH=/'],
        WorkingDir: image.workingDir ?? '/',
        ...(image.user ? { User: image.user } : {}),
        ...(image.labels ? { Labels: image.labels } : {}),
      },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] },
      history: [{ created_by: 'emuv localcluster/images/oci-archive.ts' }],
    }),
  );
  const configDigest = sha256(config);
  writeFileSync(path.join(blobs, configDigest), config);

  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configDigest}`, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerDigest}`, size: layer.length }],
    }),
  );
  const manifestDigest = sha256(manifest);
  writeFileSync(path.join(blobs, manifestDigest), manifest);

  const tag = image.name.slice(image.name.lastIndexOf(':') + 1);
  writeFileSync(path.join(work, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    path.join(work, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: `sha256:${manifestDigest}`,
          size: manifest.length,
          platform: { architecture: 'amd64', os: 'linux' },
          annotations: { 'io.containerd.image.name': image.name, 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  const tmp = `${out}.tmp`;
  execFileSync('tar', [...TAR_FLAGS, '-C', work, '-cf', tmp, 'oci-layout', 'index.json', 'blobs']);
  renameSync(tmp, out);
  rmSync(work, { recursive: true, force: true });
  return { manifestDigest: `sha256:${manifestDigest}` };
}

// The image is the Dockerfile, built by buildah from local copies of its base images (localcluster/images/):
// test/cluster/image.test.ts builds and runs it. These tests pin, without a build, what that pipeline reads
// from the Dockerfile and how it reads an image archive.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildOciArchive,
  DEBIAN_IMAGE,
  dockerfileEntrypoint,
  ensureBaseImages,
  externalBases,
  layerSizes,
  NODE_IMAGE,
  qualify,
  REPO_ROOT,
  RUNTIME_IMAGE,
  tempDir,
  type Buildah,
} from '../../localcluster/index.ts';

const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
/** The instructions of the Dockerfile's last stage, continuation lines joined, comments dropped. */
const runtimeStage = dockerfile
  .split(/^FROM\s/m)
  .at(-1)!
  .replace(/\\\n/g, ' ')
  .split('\n')
  .filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));

describe('the Dockerfile as the local build reads it', () => {
  it('builds FROM exactly the three bases the harness can make', () => {
    expect(externalBases(dockerfile).sort()).toEqual([DEBIAN_IMAGE, NODE_IMAGE, RUNTIME_IMAGE].sort());
  });

  it('qualifies short names as buildah looks them up, and skips stages and scratch', () => {
    expect(qualify('node:24-bookworm')).toBe('docker.io/library/node:24-bookworm');
    expect(qualify('bitnami/kubectl:1')).toBe('docker.io/bitnami/kubectl:1');
    expect(qualify('gcr.io/distroless/cc-debian12:nonroot')).toBe('gcr.io/distroless/cc-debian12:nonroot');
    expect(qualify('localhost/x:1')).toBe('localhost/x:1');
    expect(externalBases('FROM a:1 AS one\nFROM one\nFROM scratch\nFROM --platform=linux/amd64 b AS two\nFROM two AS three\n')).toEqual([
      'docker.io/library/a:1',
      'docker.io/library/b',
    ]);
  });

  it('refuses a FROM it has no recipe for, before touching the image store', () => {
    const calls: string[][] = [];
    const fake: Buildah = {
      globalArgs: [],
      root: '/nonexistent',
      run: (args) => (calls.push(args), ''),
      imageId: () => undefined,
    };
    expect(() => ensureBaseImages(fake, `${dockerfile}\nFROM alpine:3 AS extra\n`, '/nonexistent', '/nonexistent', () => {})).toThrow(
      /FROM docker\.io\/library\/alpine:3, which localcluster\/images\/base-images\.ts cannot make/,
    );
    expect(calls).toEqual([]);
  });

  it('runtime stage: distroless, no RUN (the host CA mounted for RUN steps cannot reach it), non-root last', () => {
    expect(dockerfile).toMatch(/^FROM gcr\.io\/distroless\/cc-debian12:nonroot$/m);
    expect(runtimeStage.filter((l) => /^RUN\s/.test(l))).toEqual([]);
    expect(runtimeStage.filter((l) => /^USER\s/.test(l)).at(-1)).toBe('USER 65532:65532');
    expect(
      runtimeStage
        .map((l) => /^COPY\s+(\S+)\s+(\S+)\s+(\S+)$/.exec(l)?.slice(1).join(' ') ?? /^COPY\s+(\S+)\s+(\S+)$/.exec(l)?.slice(1).join(' '))
        .filter(Boolean),
    ).toEqual([
      '--from=js /src/node /usr/local/bin/node',
      '--from=js /src/dist/ dist/',
      '--from=js /src/node_modules/koffi/ node_modules/koffi/',
      '--from=js /src/node_modules/@koromix/ node_modules/@koromix/',
      '--from=native /src/native/build/lib/ native/build/lib/',
      'LICENSE ./',
    ]);
  });

  it('reads the exec-form ENTRYPOINT of the last stage, and says when there is none', () => {
    expect(dockerfileEntrypoint(dockerfile).at(-1)).toBe('/app/dist/emuv.mjs');
    expect(dockerfileEntrypoint('FROM a\nENTRYPOINT ["x"]\nFROM b\nENTRYPOINT ["y", "z"]\n')).toEqual(['y', 'z']);
    expect(() => dockerfileEntrypoint('FROM a\nENTRYPOINT y z\n')).toThrow(/no exec-form ENTRYPOINT/);
  });
});

describe('image archive sizes', () => {
  it('counts the layers and their bytes from the manifest (an uncompressed layer: both sizes equal)', () => {
    const dir = tempDir('emuv-image-');
    try {
      const rootfs = join(dir.path, 'rootfs');
      const archive = join(dir.path, 'x.oci.tar');
      mkdirSync(rootfs);
      writeFileSync(join(rootfs, 'x'), Buffer.alloc(4000, 1));
      buildOciArchive({ rootfs, name: 'emuv.local/x:1', entrypoint: ['/x'] }, archive);
      const s = layerSizes(archive);
      expect(s.layers).toBe(1);
      // A tar of one 4000-byte file: header blocks and the file rounded up to 512-byte records.
      expect(s.sizeBytes).toBeGreaterThanOrEqual(4000);
      expect(s.compressedBytes).toBe(s.sizeBytes);
    } finally {
      dir.cleanup();
    }
  });
});

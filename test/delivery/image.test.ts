// The local cluster's image builder makes the emuv image by replaying the Dockerfile's runtime stage (no container engine
// here). These tests pin what it reads from the real Dockerfile and that it refuses what it cannot replay.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRuntimeStage, REPO_ROOT } from '../../localcluster/index.ts';

const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };

describe('the Dockerfile runtime stage', () => {
  const stage = parseRuntimeStage(dockerfile);

  it('holds the bundle, koffi with its platform module, the interposer libraries and the licence', () => {
    expect(stage.copies.map((c) => `${c.from ?? 'context'}:${c.src}->${c.dest}`)).toEqual([
      'js:/src/dist/->/app/dist',
      'js:/src/node_modules/koffi/->/app/node_modules/koffi',
      'js:/src/node_modules/@koromix/->/app/node_modules/@koromix',
      'native:/src/native/build/lib/->/app/native/build/lib',
      'context:LICENSE->/app',
    ]);
  });

  it('runs as non-root by default, with the agent V8 flags and OCI labels carrying the package version', () => {
    expect(stage.user).toBe('65532:65532');
    expect(stage.entrypoint[0]).toBe('node');
    expect(stage.entrypoint.at(-1)).toBe('/app/dist/emuv.mjs');
    expect(stage.env).toEqual({});
    expect(stage.labels['org.opencontainers.image.version']).toBe(pkg.version);
    expect(Object.keys(stage.labels)).toEqual(
      expect.arrayContaining(['org.opencontainers.image.title', 'org.opencontainers.image.licenses', 'org.opencontainers.image.source']),
    );
  });

  it('builds the operator bundle too (the js stage copies operator/)', () => {
    expect(dockerfile).toMatch(/^COPY operator\/ operator\/$/m);
  });

  it('refuses a runtime-stage instruction the builder cannot replay, and an ARG without default', () => {
    expect(() => parseRuntimeStage(`${dockerfile}\nRUN apt-get update\n`)).toThrow(/does not replay "RUN"/);
    expect(() => parseRuntimeStage('FROM x\nARG V\nLABEL a=${V}\nENTRYPOINT ["x"]\n')).toThrow(/ARG V needs a default/);
    expect(() => parseRuntimeStage('FROM x\nCOPY --chown=1 a b\nENTRYPOINT ["x"]\n')).toThrow(/unsupported COPY/);
    expect(() => parseRuntimeStage('FROM x\nWORKDIR /a\n')).toThrow(/no ENTRYPOINT/);
  });

  it('reads continuation lines, quoted values and only the last stage', () => {
    const s = parseRuntimeStage(
      'FROM a AS one\nENV X=1\nFROM b\nARG V=2\nLABEL k="v \\"q\\"" \\\n  n=${V}\nWORKDIR /w\nCOPY f ./\nENTRYPOINT ["e"]\n',
    );
    expect(s.env).toEqual({});
    expect(s.labels).toEqual({ k: 'v "q"', n: '2' });
    expect(s.copies).toEqual([{ from: undefined, src: 'f', dest: '/w', intoDir: true }]);
  });
});

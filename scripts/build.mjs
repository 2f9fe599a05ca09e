// Bundles the `emuv` command (plugin/main.ts) and the operator (operator/main.ts) into dist/ with esbuild: one ESM entry plus lazily
// loaded chunks (the Kubernetes client is only loaded when node status is on), tree-shaken and
// minified, because a DaemonSet pays its memory on every GPU node. koffi stays external (a native
// addon); the kubelet API .proto files are copied beside the bundle, where the loader looks for it.
import { build } from 'esbuild';
import { chmodSync, cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const started = Date.now();
await build({
  entryPoints: { emuv: join(root, 'plugin', 'main.ts'), 'emuv-operator': join(root, 'operator', 'main.ts') },
  outdir: out,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  minify: true,
  sourcemap: false,
  legalComments: 'linked',
  external: ['koffi'],
  // Bundled CommonJS dependencies call require(); give the ESM bundle one.
  banner: {
    js: "import { createRequire as __emuvCreateRequire } from 'node:module'; const require = __emuvCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
// Every .proto under protos/, at the same relative path: the loaders (protos/*.ts) resolve them beside
// themselves, which in the bundle is dist/. A list here would be a second list to keep in step.
for (const proto of readdirSync(join(root, 'protos'), { recursive: true }).filter((f) => f.endsWith('.proto'))) {
  mkdirSync(dirname(join(out, proto)), { recursive: true });
  cpSync(join(root, 'protos', proto), join(out, proto));
}
chmodSync(join(out, 'emuv.mjs'), 0o755);
console.log(`built dist/emuv.mjs and dist/emuv-operator.mjs in ${Date.now() - started} ms`);

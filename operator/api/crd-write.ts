/** Regenerates deploy/crds/ from schema.ts: `npm exec -- node operator/api/crd-write.ts`. */
import { writeFileSync } from 'node:fs';
import { CRD_FILES, crdYaml } from './crd.ts';

for (const [file, build] of Object.entries(CRD_FILES)) {
  const url = new URL(`../../deploy/crds/${file}`, import.meta.url);
  writeFileSync(url, crdYaml(build()));
}

/**
 * Regenerates the CRDs from schema.ts into deploy/crds/ and the chart's crds/ (Helm installs those
 * before anything else): `npm exec -- node operator/api/crd-write.ts`.
 */
import { writeFileSync } from 'node:fs';
import { CRD_FILES, crdYaml } from './crd.ts';

for (const [file, build] of Object.entries(CRD_FILES)) {
  for (const dir of ['../../deploy/crds/', '../../helm/emuv/crds/'])
    writeFileSync(new URL(`${dir}${file}`, import.meta.url), crdYaml(build()));
}

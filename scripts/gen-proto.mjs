// Regenerates the TypeScript types of the kubelet APIs we speak from our .proto files:
//   protos/deviceplugin/v1beta1/api.proto -> protos/generated/deviceplugin
//   protos/podresources/v1/api.proto      -> protos/generated/podresources
//   protos/dra/{v1,v1beta1}/api.proto     -> protos/generated/dra/{v1,v1beta1}
//   protos/pluginregistration/v1/api.proto -> protos/generated/pluginregistration
//   protos/drahealth/{v1,v1alpha1}/api.proto -> protos/generated/drahealth/{v1,v1alpha1}
// One generator run per .proto file: the generator names its top-level file after the .proto (api.ts), so
// two api.proto files in one run would overwrite each other's.
// The output is committed; test/contract/proto-types.test.ts regenerates into a temp dir and fails on drift.
// Usage: node scripts/gen-proto.mjs [outDir]   (default: protos/generated)
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = process.argv[2] ?? join(root, 'protos', 'generated');
export const GEN_ARGS = [
  '--keepCase',
  '--longs=Number',
  '--enums=String',
  '--defaults',
  '--oneofs',
  '--grpcLib=@grpc/grpc-js',
  '--importFileExtension=.ts',
];
rmSync(outDir, { recursive: true, force: true });
for (const [name, proto] of [
  ['deviceplugin', 'protos/deviceplugin/v1beta1/api.proto'],
  ['podresources', 'protos/podresources/v1/api.proto'],
  ['dra/v1', 'protos/dra/v1/api.proto'],
  ['dra/v1beta1', 'protos/dra/v1beta1/api.proto'],
  ['pluginregistration', 'protos/pluginregistration/v1/api.proto'],
  ['drahealth/v1', 'protos/drahealth/v1/api.proto'],
  ['drahealth/v1alpha1', 'protos/drahealth/v1alpha1/api.proto'],
]) {
  execFileSync(join(root, 'node_modules', '.bin', 'proto-loader-gen-types'), [...GEN_ARGS, '-O', join(outDir, name), proto], {
    cwd: root,
    stdio: 'inherit',
  });
}

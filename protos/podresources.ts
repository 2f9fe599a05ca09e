/**
 * Loads the kubelet PodResources API v1 (protos/podresources/v1/api.proto), typed by the generated
 * types in protos/generated/podresources. Same loader options as the device plugin API.
 */
import { loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOADER_OPTIONS } from './deviceplugin.ts';
import type { ProtoGrpcType } from './generated/podresources/api.ts';

export type * from './generated/podresources/v1/ListPodResourcesResponse.ts';
export type * from './generated/podresources/v1/PodResources.ts';
export type * from './generated/podresources/v1/ContainerResources.ts';
export type * from './generated/podresources/v1/ContainerDevices.ts';
export type * from './generated/podresources/v1/PodResourcesLister.ts';

export const POD_RESOURCES_PROTO_FILE = join(dirname(fileURLToPath(import.meta.url)), 'podresources', 'v1', 'api.proto');

let cached: ProtoGrpcType['v1'] | undefined;

export function podResourcesApi(): ProtoGrpcType['v1'] {
  cached ??= (loadPackageDefinition(loadSync(POD_RESOURCES_PROTO_FILE, LOADER_OPTIONS)) as unknown as ProtoGrpcType).v1;
  return cached;
}

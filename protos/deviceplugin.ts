/**
 * Loads the device plugin API v1beta1 with @grpc/proto-loader, typed by the generated types in
 * protos/generated (regenerate with `node scripts/gen-proto.mjs`; a test fails on drift).
 *
 * Options are fixed here, once, for both sides of the wire (our plugin, our stand-in kubelet):
 * field names as in the .proto (keepCase), int64 as JS numbers (NUMA IDs are small), defaults filled.
 */
import { loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProtoGrpcType } from './generated/deviceplugin/api.ts';

export type * from './generated/deviceplugin/v1beta1/AllocateRequest.ts';
export type * from './generated/deviceplugin/v1beta1/AllocateResponse.ts';
export type * from './generated/deviceplugin/v1beta1/ContainerAllocateRequest.ts';
export type * from './generated/deviceplugin/v1beta1/ContainerAllocateResponse.ts';
export type * from './generated/deviceplugin/v1beta1/ContainerPreferredAllocationRequest.ts';
export type * from './generated/deviceplugin/v1beta1/ContainerPreferredAllocationResponse.ts';
export type * from './generated/deviceplugin/v1beta1/Device.ts';
export type * from './generated/deviceplugin/v1beta1/DevicePlugin.ts';
export type * from './generated/deviceplugin/v1beta1/DevicePluginOptions.ts';
export type * from './generated/deviceplugin/v1beta1/DeviceSpec.ts';
export type * from './generated/deviceplugin/v1beta1/Empty.ts';
export type * from './generated/deviceplugin/v1beta1/ListAndWatchResponse.ts';
export type * from './generated/deviceplugin/v1beta1/Mount.ts';
export type * from './generated/deviceplugin/v1beta1/PreferredAllocationRequest.ts';
export type * from './generated/deviceplugin/v1beta1/PreferredAllocationResponse.ts';
export type * from './generated/deviceplugin/v1beta1/PreStartContainerRequest.ts';
export type * from './generated/deviceplugin/v1beta1/PreStartContainerResponse.ts';
export type * from './generated/deviceplugin/v1beta1/RegisterRequest.ts';
export type * from './generated/deviceplugin/v1beta1/Registration.ts';
export type * from './generated/deviceplugin/v1beta1/TopologyInfo.ts';

/** API version string sent in RegisterRequest and checked by the kubelet. */
export const DEVICE_PLUGIN_API_VERSION = 'v1beta1';
export const HEALTHY = 'Healthy';
export const UNHEALTHY = 'Unhealthy';
/** The kubelet's registration socket, inside the device-plugin directory. */
export const KUBELET_SOCKET = 'kubelet.sock';

export const PROTO_FILE = join(dirname(fileURLToPath(import.meta.url)), 'deviceplugin', 'v1beta1', 'api.proto');

export const LOADER_OPTIONS = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;

let cached: ProtoGrpcType['v1beta1'] | undefined;

/** The `v1beta1` package: service constructors and definitions. Parsed once per process. */
export function devicePluginApi(): ProtoGrpcType['v1beta1'] {
  cached ??= (loadPackageDefinition(loadSync(PROTO_FILE, LOADER_OPTIONS)) as unknown as ProtoGrpcType).v1beta1;
  return cached;
}

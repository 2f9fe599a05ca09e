/**
 * Loads the kubelet's DRA APIs, typed by the generated types in protos/generated (regenerate with
 * `node scripts/gen-proto.mjs`; a test fails on drift):
 *   - DRAPlugin v1 and v1beta1 (protos/dra), which the driver serves on its DRA socket;
 *   - pluginregistration (protos/pluginregistration), which it serves on its registration socket;
 *   - DRAResourceHealth v1 and v1alpha1 (protos/drahealth), served next to DRAPlugin.
 * Same loader options as the device plugin API (LOADER_OPTIONS, one place), for both sides of the wire.
 * Each file is parsed once per process, on first use.
 */
import { loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOADER_OPTIONS } from './deviceplugin.ts';
import type { ProtoGrpcType as DraV1Proto } from './generated/dra/v1/api.ts';
import type { ProtoGrpcType as DraV1beta1Proto } from './generated/dra/v1beta1/api.ts';
import type { ProtoGrpcType as HealthV1Proto } from './generated/drahealth/v1/api.ts';
import type { ProtoGrpcType as HealthV1alpha1Proto } from './generated/drahealth/v1alpha1/api.ts';
import type { ProtoGrpcType as RegistrationProto } from './generated/pluginregistration/api.ts';

// v1 is the API emuv writes against; v1beta1 differs only by v1's share_id, so its handlers are v1's.
export type * from './generated/dra/v1/k8s/io/kubelet/pkg/apis/dra/v1/Claim.ts';
export type * from './generated/dra/v1/k8s/io/kubelet/pkg/apis/dra/v1/Device.ts';
export type * from './generated/dra/v1/k8s/io/kubelet/pkg/apis/dra/v1/DRAPlugin.ts';
export type * from './generated/dra/v1/k8s/io/kubelet/pkg/apis/dra/v1/NodePrepareResourceResponse.ts';
export type * from './generated/dra/v1/k8s/io/kubelet/pkg/apis/dra/v1/NodePrepareResourcesRequest.ts';
export type * from './generated/dra/v1/k8s/io/kubelet/pkg/apis/dra/v1/NodePrepareResourcesResponse.ts';
export type * from './generated/dra/v1/k8s/io/kubelet/pkg/apis/dra/v1/NodeUnprepareResourceResponse.ts';
export type * from './generated/dra/v1/k8s/io/kubelet/pkg/apis/dra/v1/NodeUnprepareResourcesRequest.ts';
export type * from './generated/dra/v1/k8s/io/kubelet/pkg/apis/dra/v1/NodeUnprepareResourcesResponse.ts';
export type { DRAPluginClient as DRAPluginV1beta1Client } from './generated/dra/v1beta1/k8s/io/kubelet/pkg/apis/dra/v1beta1/DRAPlugin.ts';
export type { Device__Output as DeviceV1beta1__Output } from './generated/dra/v1beta1/k8s/io/kubelet/pkg/apis/dra/v1beta1/Device.ts';
export type * from './generated/pluginregistration/pluginregistration/InfoRequest.ts';
export type * from './generated/pluginregistration/pluginregistration/PluginInfo.ts';
export type * from './generated/pluginregistration/pluginregistration/Registration.ts';
export type * from './generated/pluginregistration/pluginregistration/RegistrationStatus.ts';
export type * from './generated/pluginregistration/pluginregistration/RegistrationStatusResponse.ts';
// Health v1 and v1alpha1 have the same shapes; v1's types serve both.
export type * from './generated/drahealth/v1/v1/DeviceHealth.ts';
export type * from './generated/drahealth/v1/v1/DeviceIdentifier.ts';
export type * from './generated/drahealth/v1/v1/DRAResourceHealth.ts';
export type * from './generated/drahealth/v1/v1/NodeWatchResourcesRequest.ts';
export type * from './generated/drahealth/v1/v1/NodeWatchResourcesResponse.ts';
export type { DRAResourceHealthClient as DRAResourceHealthV1alpha1Client } from './generated/drahealth/v1alpha1/v1alpha1/DRAResourceHealth.ts';

/**
 * The DRAPlugin services emuv serves, by the short names the kubelet expects in PluginInfo.supported_versions.
 * The kubelet takes the first one it supports, so v1 comes first; v1beta1 is for kubelets 1.32 and 1.33.
 */
export const DRA_PLUGIN_SERVICES = ['v1.DRAPlugin', 'v1beta1.DRAPlugin'] as const;
/** The health services emuv serves; kubelet 1.37 prefers v1, 1.34 to 1.36 call v1alpha1 without looking. */
export const DRA_HEALTH_SERVICES = ['v1.DRAResourceHealth', 'v1alpha1.DRAResourceHealth'] as const;
/** PluginInfo.type of a DRA driver. */
export const PLUGIN_TYPE_DRA = 'DRAPlugin';

const here = dirname(fileURLToPath(import.meta.url));
export const DRA_PROTO_FILES = {
  draV1: join(here, 'dra', 'v1', 'api.proto'),
  draV1beta1: join(here, 'dra', 'v1beta1', 'api.proto'),
  registration: join(here, 'pluginregistration', 'v1', 'api.proto'),
  healthV1: join(here, 'drahealth', 'v1', 'api.proto'),
  healthV1alpha1: join(here, 'drahealth', 'v1alpha1', 'api.proto'),
} as const;

const loaded = new Map<string, unknown>();

function load<T>(file: string): T {
  if (!loaded.has(file)) loaded.set(file, loadPackageDefinition(loadSync(file, LOADER_OPTIONS)));
  return loaded.get(file) as T;
}

export type DraV1Package = DraV1Proto['k8s']['io']['kubelet']['pkg']['apis']['dra']['v1'];
export type DraV1beta1Package = DraV1beta1Proto['k8s']['io']['kubelet']['pkg']['apis']['dra']['v1beta1'];
export type RegistrationPackage = RegistrationProto['pluginregistration'];
export type HealthV1Package = HealthV1Proto['v1'];
export type HealthV1alpha1Package = HealthV1alpha1Proto['v1alpha1'];

/** `k8s.io.kubelet.pkg.apis.dra.v1`: the DRAPlugin service (with share_id). */
export const draV1Api = (): DraV1Package => load<DraV1Proto>(DRA_PROTO_FILES.draV1).k8s.io.kubelet.pkg.apis.dra.v1;
/** `k8s.io.kubelet.pkg.apis.dra.v1beta1`: the DRAPlugin service (no share_id). */
export const draV1beta1Api = (): DraV1beta1Package => load<DraV1beta1Proto>(DRA_PROTO_FILES.draV1beta1).k8s.io.kubelet.pkg.apis.dra.v1beta1;
/** `pluginregistration`: the Registration service the kubelet calls on the registration socket. */
export const registrationApi = (): RegistrationPackage => load<RegistrationProto>(DRA_PROTO_FILES.registration).pluginregistration;
/** `v1`: DRAResourceHealth, version v1. */
export const draHealthV1Api = (): HealthV1Package => load<HealthV1Proto>(DRA_PROTO_FILES.healthV1).v1;
/** `v1alpha1`: DRAResourceHealth, version v1alpha1. */
export const draHealthV1alpha1Api = (): HealthV1alpha1Package => load<HealthV1alpha1Proto>(DRA_PROTO_FILES.healthV1alpha1).v1alpha1;

// Original file: protos/drahealth/v1alpha1/api.proto

import type { DeviceHealth as _v1alpha1_DeviceHealth, DeviceHealth__Output as _v1alpha1_DeviceHealth__Output } from '../v1alpha1/DeviceHealth.ts';

export interface NodeWatchResourcesResponse {
  'devices'?: (_v1alpha1_DeviceHealth)[];
}

export interface NodeWatchResourcesResponse__Output {
  'devices': (_v1alpha1_DeviceHealth__Output)[];
}

// Original file: protos/drahealth/v1alpha1/api.proto


export interface DeviceIdentifier {
  'pool_name'?: (string);
  'device_name'?: (string);
}

export interface DeviceIdentifier__Output {
  'pool_name': (string);
  'device_name': (string);
}

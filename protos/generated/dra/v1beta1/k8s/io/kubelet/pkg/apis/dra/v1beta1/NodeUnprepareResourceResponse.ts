// Original file: protos/dra/v1beta1/api.proto


export interface NodeUnprepareResourceResponse {
  'error'?: (string);
}

export interface NodeUnprepareResourceResponse__Output {
  'error': (string);
}

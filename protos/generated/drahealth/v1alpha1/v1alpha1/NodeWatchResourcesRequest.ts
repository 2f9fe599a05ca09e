// Original file: protos/drahealth/v1alpha1/api.proto


export interface NodeWatchResourcesRequest {
}

export interface NodeWatchResourcesRequest__Output {
}

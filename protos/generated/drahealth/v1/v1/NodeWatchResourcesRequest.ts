// Original file: protos/drahealth/v1/api.proto


export interface NodeWatchResourcesRequest {
}

export interface NodeWatchResourcesRequest__Output {
}

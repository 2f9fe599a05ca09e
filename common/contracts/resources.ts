/** Kubernetes names shared by the agent, the operator, the chart and the tests. */

/** Node-level extended resource, in bytes, published by the agent in node status. */
export const RESOURCE_VRAM_VIRTUAL = 'emuv.io/vram-virtual';
/** Device-plugin resource: slots on a GPU; added to containers by the webhook, never by users. */
export const RESOURCE_VGPU = 'emuv.io/vgpu';
/** Socket file name of the device plugin inside the kubelet's device-plugin directory. */
export const DEVICE_PLUGIN_SOCKET = 'emuv-vgpu.sock';

export const LABEL_GPU_COUNT = 'emuv.io/gpu.count';
export const LABEL_GPU_PRODUCT = 'emuv.io/gpu.product';

/**
 * Baseline for the Allocate benchmark: a DevicePlugin server that answers Allocate with a fixed,
 * same-sized response and does nothing else. Its latency is the floor grpc-js puts under ours.
 * Usage: node bench/noop-plugin.ts <socket-path>   (prints "ready" when listening)
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { devicePluginApi } from '../protos/deviceplugin.ts';

const socket = process.argv[2];
if (!socket) throw new Error('usage: noop-plugin.ts <socket-path>');
const response = {
  container_responses: [
    {
      envs: {
        EMUV_CONTRACT_VERSION: '1',
        EMUV_GPU: 'GPU-4f1e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b',
        EMUV_VRAM_SHARE: '8053063680',
        EMUV_VRAM_MODE: 'fill',
        EMUV_STATS_FILE: '/run/emuv/stats.bin',
        NVIDIA_VISIBLE_DEVICES: 'GPU-4f1e7c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b',
        NVIDIA_DRIVER_CAPABILITIES: 'compute,utility',
      },
      mounts: [{ container_path: '/run/emuv', host_path: '/run/emuv/gpu-0000-01-00-0-s00', read_only: false }],
      devices: ['nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools', 'nvidia0'].map((n) => ({
        container_path: `/dev/${n}`,
        host_path: `/dev/${n}`,
        permissions: 'rw',
      })),
      annotations: {},
      cdi_devices: [],
    },
  ],
};
const server = new Server();
server.addService(devicePluginApi().DevicePlugin.service, {
  GetDevicePluginOptions: (_c: unknown, cb: (e: null, r: object) => void) => cb(null, { get_preferred_allocation_available: true }),
  ListAndWatch: () => {},
  GetPreferredAllocation: (_c: unknown, cb: (e: null, r: object) => void) => cb(null, { container_responses: [] }),
  Allocate: (_c: unknown, cb: (e: null, r: object) => void) => cb(null, response),
  PreStartContainer: (_c: unknown, cb: (e: null, r: object) => void) => cb(null, {}),
});
server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  process.stdout.write('ready\n');
});

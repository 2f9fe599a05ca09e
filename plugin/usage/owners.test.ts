import { describe, expect, it } from 'vitest';
import type { PodResources__Output } from '../../protos/podresources.ts';
import { allocIdFor } from '../deviceplugin/allocate.ts';
import { ownersByAllocId } from './owners.ts';

// The shape a 1.37 kubelet's List returned on the test cluster for a pod holding an emuv claim, plus a
// device-plugin pod and a claim of another driver.
const pods = [
  {
    name: 'claim-12',
    namespace: 'emuv-dra',
    containers: [
      {
        name: 'probe',
        devices: [],
        dynamic_resources: [
          {
            claim_name: 'claim-12-vram-hswqg',
            claim_namespace: 'emuv-dra',
            claim_resources: [
              {
                cdi_devices: [{ name: 'gpu.emuv.io/vgpu=dra-e15d677f-0d2a-481d-b90a-68b6842712fb-0' }],
                driver_name: 'gpu.emuv.io',
                pool_name: 'emuv-node',
                device_name: 'gpu-0000-65-00-0',
              },
            ],
          },
          {
            claim_name: 'nic',
            claim_namespace: 'emuv-dra',
            claim_resources: [
              { cdi_devices: [{ name: 'example.com/nic=eth1' }], driver_name: 'nic.example.com', pool_name: 'n', device_name: 'eth1' },
            ],
          },
        ],
      },
    ],
  },
  {
    name: 'slot-pod',
    namespace: 'default',
    containers: [
      {
        name: 'main',
        devices: [{ resource_name: 'emuv.io/vgpu', device_ids: ['gpu-0000-01-00-0-s03'], topology: null }],
        dynamic_resources: [],
      },
    ],
  },
] as unknown as PodResources__Output[];

describe('ownersByAllocId', () => {
  it('names the owners of device-plugin slots and of DRA claims (by their CDI device), and nothing else', () => {
    const owners = ownersByAllocId(pods);
    expect(owners.get('dra-e15d677f-0d2a-481d-b90a-68b6842712fb-0')).toEqual({
      namespace: 'emuv-dra',
      pod: 'claim-12',
      container: 'probe',
    });
    expect(owners.get(allocIdFor(['gpu-0000-01-00-0-s03']))).toEqual({ namespace: 'default', pod: 'slot-pod', container: 'main' });
    expect(owners.size).toBe(2);
  });
});

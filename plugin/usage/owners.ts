/**
 * Which pod and container own which allocation (pure). The kubelet's PodResources API lists the
 * device IDs of every container; the allocation ID that names a stats directory is derived from the
 * same IDs by the same function Allocate used, so the two meet without any extra bookkeeping. For DRA
 * claims it lists each container's CDI devices, and emuv's CDI device name is the allocation ID itself.
 */
import { CDI_KIND } from '../../common/contracts/dra.ts';
import { RESOURCE_VGPU } from '../../common/contracts/resources.ts';
import type { PodResources__Output } from '../../protos/podresources.ts';
import { allocIdFor } from '../deviceplugin/allocate.ts';

export interface ContainerRef {
  namespace: string;
  pod: string;
  container: string;
}

export function ownersByAllocId(pods: readonly PodResources__Output[], resourceName = RESOURCE_VGPU): Map<string, ContainerRef> {
  const out = new Map<string, ContainerRef>();
  for (const pod of pods)
    for (const c of pod.containers ?? []) {
      const ids = (c.devices ?? []).filter((d) => d.resource_name === resourceName).flatMap((d) => d.device_ids ?? []);
      if (ids.length > 0) out.set(allocIdFor(ids), { namespace: pod.namespace, pod: pod.name, container: c.name });
      for (const dyn of c.dynamic_resources ?? [])
        for (const r of dyn.claim_resources ?? [])
          for (const d of r.cdi_devices ?? [])
            if (d.name.startsWith(`${CDI_KIND}=`))
              out.set(d.name.slice(CDI_KIND.length + 1), { namespace: pod.namespace, pod: pod.name, container: c.name });
    }
  return out;
}

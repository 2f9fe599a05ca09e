// Pod manifests and helpers shared by the cluster tests.
import { DEVICE_CLASS, DRA_DRIVER } from '../../common/contracts/dra.ts';
import { PROBE_IMAGE } from '../../localcluster/index.ts';

export interface ProbePodOptions {
  name: string;
  /** Extended resources as limits (requests default to the same values). */
  limits?: Record<string, string>;
  /** Directories the probe lists in its log (`ls <dir>/<entry>` lines). */
  list?: string[];
  env?: Record<string, string>;
}

/** A pod running the locally built probe image: it prints env, mounts and devices, then sleeps. */
export function probePod(o: ProbePodOptions) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.name, labels: { app: 'emuv-probe' } },
    spec: {
      terminationGracePeriodSeconds: 2,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      containers: [
        {
          name: 'probe',
          image: PROBE_IMAGE,
          imagePullPolicy: 'Never',
          args: o.list ?? [],
          env: Object.entries(o.env ?? {}).map(([name, value]) => ({ name, value })),
          resources: {
            requests: { cpu: '10m', memory: '16Mi', ...(o.limits ?? {}) },
            limits: { memory: '32Mi', ...(o.limits ?? {}) },
          },
        },
      ],
    },
  };
}

/** Parses the probe's log into env, mounts (mount point -> options) and devices (path -> "c major:minor"). */
export function parseProbeLog(log: string) {
  const env = new Map<string, string>();
  const mounts = new Map<string, string>();
  const devices = new Map<string, string>();
  const listed: string[] = [];
  let begun = false;
  let ended = false;
  for (const line of log.split('\n')) {
    if (line === 'EMUV-PROBE BEGIN') begun = true;
    else if (line === 'EMUV-PROBE END') ended = true;
    else if (line.startsWith('env ')) {
      const kv = line.slice(4);
      const i = kv.indexOf('=');
      env.set(kv.slice(0, i), kv.slice(i + 1));
    } else if (line.startsWith('mount ')) {
      const [, point, opts] = line.split(' ');
      mounts.set(point!, opts ?? '');
    } else if (line.startsWith('dev ')) {
      const [, p, type, mm] = line.split(' ');
      devices.set(p!, `${type} ${mm}`);
    } else if (line.startsWith('ls ')) listed.push(line.slice(3));
  }
  return { complete: begun && ended, env, mounts, devices, listed };
}

/** emuv's DeviceClass, as the chart installs it (for tests that run the agent without the chart). */
export function deviceClass() {
  return {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'DeviceClass',
    metadata: { name: DEVICE_CLASS },
    spec: { selectors: [{ cel: { expression: `device.driver == "${DRA_DRIVER}"` } }] },
  };
}

/** A ResourceClaimTemplate for one emuv device with `memory` of virtual GPU memory. */
export function claimTemplate(name: string, memory: string) {
  return {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceClaimTemplate',
    metadata: { name },
    spec: {
      spec: {
        devices: {
          requests: [
            {
              name: 'vram',
              exactly: { deviceClassName: DEVICE_CLASS, allocationMode: 'ExactCount', count: 1, capacity: { requests: { memory } } },
            },
          ],
        },
      },
    },
  };
}

/** A probe pod holding one claim made from `template` (pod claim `vram`). */
export function claimPod(name: string, template: string, list?: string[]) {
  const pod = probePod({ name, list });
  return {
    ...pod,
    spec: {
      ...pod.spec,
      resourceClaims: [{ name: 'vram', resourceClaimTemplateName: template }],
      containers: pod.spec.containers.map((c) => ({ ...c, resources: { ...c.resources, claims: [{ name: 'vram' }] } })),
    },
  };
}

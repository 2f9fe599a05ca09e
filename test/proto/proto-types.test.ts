/**
 * The committed TypeScript types must be what the .proto generates today, and the .proto must carry
 * the wire facts of the kubelet API (package, services, field numbers).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSync } from '@grpc/proto-loader';
import { afterAll, describe, expect, it } from 'vitest';
import { LOADER_OPTIONS, PROTO_FILE } from '../../protos/deviceplugin.ts';
import { NODE_BIN, REPO_ROOT, tempDir } from '../../localcluster/repo.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

function listFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}

describe('device plugin API types', () => {
  it('protos/generated matches a fresh generation from api.proto', () => {
    execFileSync(NODE_BIN, [join(REPO_ROOT, 'scripts', 'gen-proto.mjs'), tmp.path], { cwd: REPO_ROOT, stdio: 'pipe' });
    const committed = join(REPO_ROOT, 'protos', 'generated');
    const files = listFiles(tmp.path).sort();
    expect(listFiles(committed).sort()).toEqual(files);
    for (const f of files) expect(readFileSync(join(committed, f), 'utf8'), f).toBe(readFileSync(join(tmp.path, f), 'utf8'));
  });

  it('keeps the wire facts: package v1beta1, method paths, field numbers', () => {
    const def = loadSync(PROTO_FILE, LOADER_OPTIONS);
    const dp = def['v1beta1.DevicePlugin'] as Record<string, { path: string; requestStream: boolean; responseStream: boolean }>;
    expect(Object.fromEntries(Object.entries(dp).map(([k, m]) => [k, m.path]))).toEqual({
      GetDevicePluginOptions: '/v1beta1.DevicePlugin/GetDevicePluginOptions',
      ListAndWatch: '/v1beta1.DevicePlugin/ListAndWatch',
      GetPreferredAllocation: '/v1beta1.DevicePlugin/GetPreferredAllocation',
      Allocate: '/v1beta1.DevicePlugin/Allocate',
      PreStartContainer: '/v1beta1.DevicePlugin/PreStartContainer',
    });
    expect(dp.ListAndWatch!.responseStream).toBe(true);
    expect((def['v1beta1.Registration'] as Record<string, { path: string }>).Register!.path).toBe('/v1beta1.Registration/Register');
    const fields = (name: string) => {
      const t = def[`v1beta1.${name}`] as { type: { field: { name: string; number: number }[] } };
      return Object.fromEntries(t.type.field.map((f) => [f.name, f.number]));
    };
    expect(fields('RegisterRequest')).toEqual({ version: 1, endpoint: 2, resource_name: 3, options: 4 });
    expect(fields('DevicePluginOptions')).toEqual({ pre_start_required: 1, get_preferred_allocation_available: 2 });
    expect(fields('Device')).toEqual({ ID: 1, health: 2, topology: 3 });
    expect(fields('NUMANode')).toEqual({ ID: 1 });
    expect(fields('ContainerPreferredAllocationRequest')).toEqual({
      available_deviceIDs: 1,
      must_include_deviceIDs: 2,
      allocation_size: 3,
    });
    expect(fields('ContainerAllocateResponse')).toEqual({ envs: 1, mounts: 2, devices: 3, annotations: 4, cdi_devices: 5 });
    expect(fields('Mount')).toEqual({ container_path: 1, host_path: 2, read_only: 3 });
    expect(fields('DeviceSpec')).toEqual({ container_path: 1, host_path: 2, permissions: 3 });
    expect(fields('CDIDevice')).toEqual({ name: 1 });
    expect(fields('ContainerAllocateRequest')).toEqual({ devices_ids: 1 });
  });
});

/**
 * The DRA kubelet plugin over a real gRPC wire: Unix sockets in a temporary directory, and a stand-in
 * kubelet built from protos/dra.ts (the same loader the plugin uses), calling as the kubelet does.
 */
import { credentials, status as grpcStatus, type Client, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { existsSync, mkdirSync, statSync, watch as watchDir, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSync } from '@grpc/proto-loader';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { memoryLogger } from '../../common/log.ts';
import { tempDir } from '../../localcluster/repo.ts';
import { LOADER_OPTIONS } from '../../protos/deviceplugin.ts';
import {
  DRA_HEALTH_SERVICES,
  DRA_PROTO_FILES,
  DRA_PLUGIN_SERVICES,
  draHealthV1alpha1Api,
  draHealthV1Api,
  draV1Api,
  draV1beta1Api,
  PLUGIN_TYPE_DRA,
  registrationApi,
  type Claim,
  type DeviceHealth__Output,
  type NodePrepareResourcesResponse__Output,
  type NodeUnprepareResourcesResponse__Output,
  type NodeWatchResourcesResponse__Output,
} from '../../protos/dra.ts';
import {
  DraKubeletPlugin,
  type DeviceHealthView,
  type DraClaimRef,
  type DraDriver,
  type HealthSource,
  type PrepareOutcome,
} from './kubelet-plugin.ts';

const DRIVER = 'emuv.io';

/** A driver whose answers each test sets; it records what it was asked. */
class FakeDriver implements DraDriver {
  prepared: DraClaimRef[][] = [];
  unprepared: DraClaimRef[][] = [];
  prepareWith: (claims: DraClaimRef[]) => Promise<Map<string, PrepareOutcome>> = async (claims) =>
    new Map(claims.map((c) => [c.uid, { devices: [] }]));
  unprepareWith: (claims: DraClaimRef[]) => Promise<Map<string, { error?: string }>> = async (claims) =>
    new Map(claims.map((c) => [c.uid, {}]));
  prepare(claims: DraClaimRef[]) {
    this.prepared.push(claims);
    return this.prepareWith(claims);
  }
  unprepare(claims: DraClaimRef[]) {
    this.unprepared.push(claims);
    return this.unprepareWith(claims);
  }
}

class FakeHealth implements HealthSource {
  devices: DeviceHealthView[] = [];
  readonly listeners = new Set<() => void>();
  current() {
    return this.devices;
  }
  subscribe(listener: () => void) {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }
  set(devices: DeviceHealthView[]) {
    this.devices = devices;
    for (const l of this.listeners) l();
  }
}

let tmp: { path: string; cleanup: () => void };
let pluginDir: string;
let registryDir: string;
let driver: FakeDriver;
let health: FakeHealth;
let log: ReturnType<typeof memoryLogger>;
let plugin: DraKubeletPlugin;
const clients: Client[] = [];

function newPlugin(extra: { onRegistered?: () => void; healthCheckTimeoutSeconds?: number } = {}) {
  return new DraKubeletPlugin({ driverName: DRIVER, pluginDir, registryDir, driver, health, logger: log, ...extra });
}

beforeEach(() => {
  tmp = tempDir('emuv-dra-');
  pluginDir = join(tmp.path, 'plugins', DRIVER);
  registryDir = join(tmp.path, 'plugins_registry');
  driver = new FakeDriver();
  health = new FakeHealth();
  log = memoryLogger();
  plugin = newPlugin();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await plugin.stop();
  tmp.cleanup();
});

const regSocket = () => join(registryDir, `${DRIVER}-reg.sock`);
const draSocket = () => join(pluginDir, 'dra.sock');

function track<C extends Client>(c: C): C {
  clients.push(c);
  return c;
}

const v1 = () => track(new (draV1Api().DRAPlugin)(`unix://${draSocket()}`, credentials.createInsecure()));
const v1beta1 = () => track(new (draV1beta1Api().DRAPlugin)(`unix://${draSocket()}`, credentials.createInsecure()));
const registration = () => track(new (registrationApi().Registration)(`unix://${regSocket()}`, credentials.createInsecure()));

type Unary<Req, Res> = (req: Req, cb: (err: ServiceError | null, res?: Res) => void) => unknown;

function call<Req, Res>(client: Client, fn: Unary<Req, Res>, req: Req): Promise<Res> {
  return new Promise((ok, fail) => fn.call(client, req, (err, res) => (err ? fail(err) : ok(res!))));
}

function prepareV1(claims: Claim[]): Promise<NodePrepareResourcesResponse__Output> {
  const c = v1();
  return call(c, c.NodePrepareResources, { claims });
}

function unprepareV1(claims: Claim[]): Promise<NodeUnprepareResourcesResponse__Output> {
  const c = v1();
  return call(c, c.NodeUnprepareResources, { claims });
}

async function rejection(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error('expected the call to fail');
}

const claim = (uid: string, name = `claim-${uid}`): Claim => ({ namespace: 'ns', uid, name });

describe('registration', () => {
  it('serves both sockets; GetInfo names the driver, the absolute DRA socket and the services, v1 first', async () => {
    await plugin.start();
    expect(statSync(draSocket()).isSocket()).toBe(true);
    expect(statSync(regSocket()).isSocket()).toBe(true);
    expect(plugin.endpoint).toBe(draSocket());
    const c = registration();
    const info = await call(c, c.GetInfo, {});
    expect(info).toEqual({
      type: PLUGIN_TYPE_DRA,
      name: DRIVER,
      endpoint: draSocket(),
      supported_versions: ['v1.DRAPlugin', 'v1beta1.DRAPlugin', 'v1.DRAResourceHealth', 'v1alpha1.DRAResourceHealth'],
    });
    expect(info.supported_versions).toEqual([...DRA_PLUGIN_SERVICES, ...DRA_HEALTH_SERVICES]);
    expect(PLUGIN_TYPE_DRA).toBe('DRAPlugin');
  });

  it('records what NotifyRegistrationStatus says, calls onRegistered, and logs a refusal with its reason', async () => {
    let notified = 0;
    plugin = newPlugin({ onRegistered: () => notified++ });
    await plugin.start();
    expect(plugin.registered).toBe(false);
    const c = registration();
    await call(c, c.NotifyRegistrationStatus, { plugin_registered: true });
    expect(plugin.registered).toBe(true);
    expect(notified).toBe(1);
    await call(c, c.NotifyRegistrationStatus, { plugin_registered: false, error: 'no supported DRAPlugin service' });
    expect(plugin.registered).toBe(false);
    expect(notified).toBe(1);
    const refusal = log.entries.find((e) => e.level === 'error');
    expect(refusal?.fields.err).toBe('no supported DRAPlugin service');
  });

  it('creates missing directories and replaces stale files at both socket paths', async () => {
    mkdirSync(pluginDir, { recursive: true });
    mkdirSync(registryDir, { recursive: true });
    writeFileSync(draSocket(), 'left by an earlier run');
    writeFileSync(regSocket(), 'left by an earlier run');
    await plugin.start();
    expect(statSync(draSocket()).isSocket()).toBe(true);
    expect(statSync(regSocket()).isSocket()).toBe(true);
    expect(await prepareV1([claim('a')])).toEqual({ claims: { a: { devices: [], error: '' } } });
    const c = registration();
    expect((await call(c, c.GetInfo, {})).name).toBe(DRIVER);
  });

  it('refuses a health-check timeout that is not a positive whole number of seconds', () => {
    for (const bad of [0, -1, 1.5, Number.NaN])
      expect(() => newPlugin({ healthCheckTimeoutSeconds: bad })).toThrow(/healthCheckTimeoutSeconds/);
  });

  it('does not announce itself, not even for a moment, when the DRA socket cannot be served', async () => {
    mkdirSync(registryDir, { recursive: true });
    const events: string[] = [];
    const watcher = watchDir(registryDir, (event, file) => events.push(`${event} ${file}`));
    try {
      mkdirSync(join(draSocket(), 'occupied'), { recursive: true }); // a directory where the socket goes
      await expect(plugin.start()).rejects.toThrow();
      expect(existsSync(regSocket())).toBe(false);
      // The registration socket was never created (a watch sees a create even if stop() removed it since).
      writeFileSync(join(registryDir, 'marker'), '');
      await expect.poll(() => events).toContain('rename marker');
      expect(events.filter((e) => e.includes('-reg.sock'))).toEqual([]);
    } finally {
      watcher.close();
    }
  });

  it('stop removes both sockets and stops answering; a second stop is harmless', async () => {
    await plugin.start();
    await plugin.stop();
    expect(existsSync(draSocket())).toBe(false);
    expect(existsSync(regSocket())).toBe(false);
    expect(plugin.registered).toBe(false);
    const err = await rejection(prepareV1([claim('a')]));
    expect(err.code).toBe(grpcStatus.UNAVAILABLE);
    await plugin.stop();
  });
});

describe('NodePrepareResources', () => {
  beforeEach(() => plugin.start());

  const device = (name: string, shareId?: string) => ({
    requestNames: ['gpu'],
    poolName: 'node-1',
    deviceName: name,
    cdiDeviceIds: [`emuv.io/vgpu=${name}`, 'emuv.io/vgpu=common'],
    ...(shareId ? { shareId } : {}),
  });

  it('v1 passes the driver’s devices through, share_id and CDI IDs included, keyed by claim uid', async () => {
    driver.prepareWith = async () =>
      new Map<string, PrepareOutcome>([
        ['u1', { devices: [device('gpu-0', '7f1c0c4e-share')] }],
        ['u2', { devices: [device('gpu-1')] }],
      ]);
    const res = await prepareV1([claim('u1'), claim('u2')]);
    expect(driver.prepared).toEqual([[claim('u1'), claim('u2')]]);
    expect(res.claims.u1).toEqual({
      error: '',
      devices: [
        {
          request_names: ['gpu'],
          pool_name: 'node-1',
          device_name: 'gpu-0',
          cdi_device_ids: ['emuv.io/vgpu=gpu-0', 'emuv.io/vgpu=common'],
          share_id: '7f1c0c4e-share',
          _share_id: 'share_id',
        },
      ],
    });
    // No shareId from the driver: the optional field is absent on the wire, not an empty string.
    expect(res.claims.u2!.devices[0]!.share_id).toBeUndefined();
    expect(res.claims.u2!.devices[0]!.device_name).toBe('gpu-1');
  });

  it('v1beta1 gets the same devices without share_id', async () => {
    driver.prepareWith = async () => new Map<string, PrepareOutcome>([['u1', { devices: [device('gpu-0', 'share-1')] }]]);
    const c = v1beta1();
    const res = await call(c, c.NodePrepareResources, { claims: [claim('u1')] });
    expect(res.claims.u1).toEqual({
      error: '',
      devices: [
        {
          request_names: ['gpu'],
          pool_name: 'node-1',
          device_name: 'gpu-0',
          cdi_device_ids: ['emuv.io/vgpu=gpu-0', 'emuv.io/vgpu=common'],
        },
      ],
    });
  });

  it('a request with no claims answers an empty map without calling the driver', async () => {
    expect(await prepareV1([])).toEqual({ claims: {} });
    expect(driver.prepared).toEqual([]);
  });

  it('gives every claim an entry when the driver omits some and reports errors for others', async () => {
    driver.prepareWith = async () =>
      new Map<string, PrepareOutcome>([
        ['u1', { devices: [device('gpu-0')] }],
        ['u3', { error: 'ResourceClaim ns/claim-u3 is not allocated to this node' }],
        ['u4', { error: '' }],
        ['not-asked', { devices: [device('gpu-9')] }],
      ]);
    const res = await prepareV1([claim('u1'), claim('u2'), claim('u3'), claim('u4')]);
    expect(Object.keys(res.claims).sort()).toEqual(['u1', 'u2', 'u3', 'u4']);
    expect(res.claims.u1!.error).toBe('');
    expect(res.claims.u2).toEqual({ devices: [], error: 'the driver returned no result for this claim' });
    expect(res.claims.u3).toEqual({ devices: [], error: 'ResourceClaim ns/claim-u3 is not allocated to this node' });
    expect(res.claims.u4!.error).toMatch(/without saying why/);
    expect(log.entries.some((e) => e.level === 'warn' && /no prepare result/.test(e.msg))).toBe(true);
  });

  it('turns a driver exception into an error entry for every claim, bounded, and keeps serving', async () => {
    driver.prepareWith = async () => {
      throw new Error(`apiserver unreachable ${'x'.repeat(100_000)}`);
    };
    const res = await prepareV1([claim('u1'), claim('u2')]);
    expect(Object.keys(res.claims).sort()).toEqual(['u1', 'u2']);
    for (const entry of Object.values(res.claims)) {
      expect(entry.devices).toEqual([]);
      expect(entry.error).toMatch(/^failed to prepare the claim: apiserver unreachable x+… \(100022 characters\)$/);
      expect(entry.error.length).toBeLessThan(1100);
    }
    driver.prepareWith = async (claims) => new Map(claims.map((c) => [c.uid, { devices: [] }]));
    expect(await prepareV1([claim('u3')])).toEqual({ claims: { u3: { devices: [], error: '' } } });
  });

  it('answers a synchronous throw and a malformed driver result per claim', async () => {
    driver.prepareWith = () => {
      throw new TypeError('not a promise');
    };
    expect((await prepareV1([claim('u1')])).claims.u1!.error).toBe('failed to prepare the claim: not a promise');
    driver.prepareWith = async () => new Map([['u1', { devices: [null] } as unknown as PrepareOutcome]]);
    expect((await prepareV1([claim('u1')])).claims.u1!.error).toMatch(/^the driver returned a malformed result: /);
  });

  it('rejects claims without a uid with INVALID_ARGUMENT, naming them, and does not call the driver', async () => {
    const err = await rejection(prepareV1([claim('u1'), { namespace: 'ns', name: 'nameless-uid' }]));
    expect(err.code).toBe(grpcStatus.INVALID_ARGUMENT);
    expect(err.details).toBe('NodePrepareResources: 1 of 2 claims have no uid: #1 (ns/nameless-uid)');
    expect(driver.prepared).toEqual([]);
  });

  it('rejects repeated uids with INVALID_ARGUMENT, and a flood of them with a bounded message', async () => {
    const err = await rejection(prepareV1([claim('u1'), claim('u1', 'other')]));
    expect(err.code).toBe(grpcStatus.INVALID_ARGUMENT);
    expect(err.details).toBe('NodePrepareResources: claim uids repeated: u1');
    const many = Array.from({ length: 3000 }, (_, i) => claim(`${'u'.repeat(500)}-${i}`, 'c'));
    const flood = await rejection(prepareV1([...many, ...many]));
    expect(flood.code).toBe(grpcStatus.INVALID_ARGUMENT);
    expect(flood.details).toMatch(/and 2992 more$/);
    expect(flood.details.length).toBeLessThan(2000);
    expect(driver.prepared).toEqual([]);
  });

  it('answers a claim without namespace or name with an error entry and prepares the others', async () => {
    const res = await prepareV1([{ uid: 'u1', name: 'c1' }, { uid: 'u2', namespace: 'ns' }, claim('u3')]);
    expect(res.claims.u1).toEqual({ devices: [], error: 'claim u1 has no namespace' });
    expect(res.claims.u2).toEqual({ devices: [], error: 'claim u2 has no name' });
    expect(res.claims.u3).toEqual({ devices: [], error: '' });
    expect(driver.prepared).toEqual([[claim('u3')]]);
  });

  it('refuses bytes that are not a request, and keeps serving', async () => {
    const c = v1();
    const err = await new Promise<ServiceError>((ok) =>
      c.makeUnaryRequest(
        '/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodePrepareResources',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), // field 1, length far past the end
        (e) => ok(e!),
      ),
    );
    expect(err.code).not.toBe(grpcStatus.OK);
    expect(err.code).not.toBe(grpcStatus.UNAVAILABLE);
    expect(await prepareV1([claim('u1')])).toEqual({ claims: { u1: { devices: [], error: '' } } });
  });
});

describe('NodeUnprepareResources', () => {
  beforeEach(() => plugin.start());

  it('answers every claim: success, driver error, omitted, and on v1beta1 too', async () => {
    driver.unprepareWith = async () =>
      new Map([
        ['u1', {}],
        ['u2', { error: 'CDI spec busy' }],
      ]);
    const res = await unprepareV1([claim('u1'), claim('u2'), claim('u3')]);
    expect(res).toEqual({
      claims: { u1: { error: '' }, u2: { error: 'CDI spec busy' }, u3: { error: 'the driver returned no result for this claim' } },
    });
    expect(driver.unprepared).toEqual([[claim('u1'), claim('u2'), claim('u3')]]);
    const c = v1beta1();
    expect(await call(c, c.NodeUnprepareResources, { claims: [claim('u1')] })).toEqual({ claims: { u1: { error: '' } } });
  });

  it('maps a driver exception to every claim and validates like prepare', async () => {
    driver.unprepareWith = async () => {
      throw new Error('disk full');
    };
    expect(await unprepareV1([claim('u1'), claim('u2')])).toEqual({
      claims: { u1: { error: 'failed to unprepare the claim: disk full' }, u2: { error: 'failed to unprepare the claim: disk full' } },
    });
    expect(await unprepareV1([])).toEqual({ claims: {} });
    const err = await rejection(unprepareV1([{ namespace: 'ns', name: 'x' }]));
    expect(err.code).toBe(grpcStatus.INVALID_ARGUMENT);
    expect(err.details).toMatch(/^NodeUnprepareResources: 1 of 1 claims have no uid/);
  });
});

describe.each([
  ['v1', () => draHealthV1Api().DRAResourceHealth],
  ['v1alpha1', () => draHealthV1alpha1Api().DRAResourceHealth],
] as const)('DRAResourceHealth %s', (_version, service) => {
  function watch(): {
    messages: NodeWatchResourcesResponse__Output[];
    stream: ClientReadableStream<NodeWatchResourcesResponse__Output>;
    next: (n: number) => Promise<void>;
  } {
    const Ctor = service();
    const client = track(new Ctor(`unix://${draSocket()}`, credentials.createInsecure()));
    const stream = client.NodeWatchResources({}) as ClientReadableStream<NodeWatchResourcesResponse__Output>;
    const messages: NodeWatchResourcesResponse__Output[] = [];
    const waiters: (() => void)[] = [];
    stream.on('data', (m: NodeWatchResourcesResponse__Output) => {
      messages.push(m);
      for (const w of waiters.splice(0)) w();
    });
    stream.on('error', () => {}); // the cancel at the end of each test
    const next = async (n: number) => {
      while (messages.length < n) await new Promise<void>((r) => waiters.push(r));
    };
    return { messages, stream, next };
  }

  const view = (name: string, healthy: boolean, message = ''): DeviceHealthView => ({
    poolName: 'node-1',
    deviceName: name,
    healthy,
    message,
  });
  const wire = (name: string, healthy: boolean, message = '') => ({
    device: { pool_name: 'node-1', device_name: name },
    health: healthy ? 'HEALTHY' : 'UNHEALTHY',
    health_check_timeout_seconds: 45,
    message,
  });
  const strip = (devices: DeviceHealth__Output[]) => devices.map(({ last_updated_time: _t, ...rest }) => rest);

  it('sends the current list at once, then the new list on each change, until cancelled', async () => {
    plugin = newPlugin({ healthCheckTimeoutSeconds: 45 });
    await plugin.start();
    health.devices = [view('gpu-0', true), view('gpu-1', true)];
    const before = Math.floor(Date.now() / 1000);
    const { messages, stream, next } = watch();
    await next(1);
    expect(strip(messages[0]!.devices)).toEqual([wire('gpu-0', true), wire('gpu-1', true)]);
    const t = messages[0]!.devices[0]!.last_updated_time;
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
    health.set([view('gpu-0', true), view('gpu-1', false, 'Xid 79: GPU fell off the bus')]);
    await next(2);
    expect(strip(messages[1]!.devices)).toEqual([wire('gpu-0', true), wire('gpu-1', false, 'Xid 79: GPU fell off the bus')]);
    expect(health.listeners.size).toBe(1);
    stream.cancel();
    await expect.poll(() => health.listeners.size).toBe(0);
  });

  it('resends the list every half timeout while nothing changes', async () => {
    plugin = newPlugin({ healthCheckTimeoutSeconds: 2 });
    await plugin.start();
    health.devices = [view('gpu-0', true)];
    const { messages, next } = watch();
    await next(2); // the second one without any notify
    expect(messages[1]!.devices.map((d) => d.device!.device_name)).toEqual(['gpu-0']);
    expect(messages[1]!.devices[0]!.health_check_timeout_seconds).toBe(2);
  });

  it('ends the stream when the plugin stops', async () => {
    await plugin.start();
    const { stream, next } = watch();
    await next(1);
    const ended = new Promise<string>((r) => {
      stream.on('error', (e: ServiceError) => r(`error ${e.code}`));
      stream.on('end', () => r('end'));
    });
    await plugin.stop();
    expect(await ended).toBeTruthy();
    await expect.poll(() => health.listeners.size).toBe(0);
  });
});

describe('wire facts of the .proto files (package, method paths, field numbers)', () => {
  type Methods = Record<string, { path: string; responseStream: boolean }>;
  const fields = (def: ReturnType<typeof loadSync>, name: string) =>
    Object.fromEntries((def[name] as { type: { field: { name: string; number: number }[] } }).type.field.map((f) => [f.name, f.number]));

  it.each([
    ['v1', DRA_PROTO_FILES.draV1, { share_id: 5 }],
    ['v1beta1', DRA_PROTO_FILES.draV1beta1, {}],
  ] as const)('DRAPlugin %s', (version, file, extra) => {
    const def = loadSync(file, LOADER_OPTIONS);
    const pkg = `k8s.io.kubelet.pkg.apis.dra.${version}`;
    const svc = def[`${pkg}.DRAPlugin`] as Methods;
    expect(Object.fromEntries(Object.entries(svc).map(([k, m]) => [k, m.path]))).toEqual({
      NodePrepareResources: `/${pkg}.DRAPlugin/NodePrepareResources`,
      NodeUnprepareResources: `/${pkg}.DRAPlugin/NodeUnprepareResources`,
    });
    expect(fields(def, `${pkg}.NodePrepareResourcesRequest`)).toEqual({ claims: 1 });
    expect(fields(def, `${pkg}.NodePrepareResourcesResponse`)).toEqual({ claims: 1 });
    expect(fields(def, `${pkg}.NodePrepareResourceResponse`)).toEqual({ devices: 1, error: 2 });
    expect(fields(def, `${pkg}.Device`)).toEqual({ request_names: 1, pool_name: 2, device_name: 3, cdi_device_ids: 4, ...extra });
    expect(fields(def, `${pkg}.NodeUnprepareResourcesRequest`)).toEqual({ claims: 1 });
    expect(fields(def, `${pkg}.NodeUnprepareResourcesResponse`)).toEqual({ claims: 1 });
    expect(fields(def, `${pkg}.NodeUnprepareResourceResponse`)).toEqual({ error: 1 });
    expect(fields(def, `${pkg}.Claim`)).toEqual({ namespace: 1, uid: 2, name: 3 });
  });

  it('pluginregistration', () => {
    const def = loadSync(DRA_PROTO_FILES.registration, LOADER_OPTIONS);
    const svc = def['pluginregistration.Registration'] as Methods;
    expect(Object.fromEntries(Object.entries(svc).map(([k, m]) => [k, m.path]))).toEqual({
      GetInfo: '/pluginregistration.Registration/GetInfo',
      NotifyRegistrationStatus: '/pluginregistration.Registration/NotifyRegistrationStatus',
    });
    expect(fields(def, 'pluginregistration.PluginInfo')).toEqual({ type: 1, name: 2, endpoint: 3, supported_versions: 4 });
    expect(fields(def, 'pluginregistration.RegistrationStatus')).toEqual({ plugin_registered: 1, error: 2 });
    expect(fields(def, 'pluginregistration.InfoRequest')).toEqual({});
    expect(fields(def, 'pluginregistration.RegistrationStatusResponse')).toEqual({});
  });

  it.each([
    ['v1', DRA_PROTO_FILES.healthV1],
    ['v1alpha1', DRA_PROTO_FILES.healthV1alpha1],
  ] as const)('DRAResourceHealth %s', (pkg, file) => {
    const def = loadSync(file, LOADER_OPTIONS);
    const watch = (def[`${pkg}.DRAResourceHealth`] as Methods).NodeWatchResources!;
    expect(watch.path).toBe(`/${pkg}.DRAResourceHealth/NodeWatchResources`);
    expect(watch.responseStream).toBe(true);
    expect(fields(def, `${pkg}.NodeWatchResourcesRequest`)).toEqual({});
    expect(fields(def, `${pkg}.NodeWatchResourcesResponse`)).toEqual({ devices: 1 });
    expect(fields(def, `${pkg}.DeviceHealth`)).toEqual({
      device: 1,
      health: 2,
      last_updated_time: 3,
      health_check_timeout_seconds: 4,
      message: 5,
    });
    expect(fields(def, `${pkg}.DeviceIdentifier`)).toEqual({ pool_name: 1, device_name: 2 });
    const values = (def[`${pkg}.HealthStatus`] as { type: { value: { name: string; number: number }[] } }).type.value;
    expect(Object.fromEntries(values.map((v) => [v.name, v.number]))).toEqual({ UNKNOWN: 0, HEALTHY: 1, UNHEALTHY: 2 });
  });
});

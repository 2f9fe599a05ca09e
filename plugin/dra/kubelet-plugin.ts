/**
 * DRA kubelet plugin lifecycle: the gRPC side of a DRA driver. Serves DRAPlugin (v1 and v1beta1) and
 * DRAResourceHealth (v1 and v1alpha1) on <pluginDir>/dra.sock, and only once that listens, Registration on
 * <registryDir>/<driver>-reg.sock: the kubelet's plugin watcher sees the registration socket appear, asks
 * GetInfo and may call the DRA socket at once, so the order matters. stop() removes both sockets; the
 * registration socket disappearing is how the kubelet learns the driver left.
 *
 * Knows nothing about claims or devices: a DraDriver prepares and unprepares, a HealthSource says how the
 * devices are. What this file owns is the wire: strict request checks, one response entry per claim
 * whatever the driver does, and bounded error text.
 */
import { Server, ServerCredentials, status as grpcStatus, type ServerErrorResponse, type ServerWritableStream } from '@grpc/grpc-js';
import { mkdirSync, unlinkSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from '../../common/log.ts';
import { errFields } from '../../common/log.ts';
import {
  DRA_HEALTH_SERVICES,
  DRA_PLUGIN_SERVICES,
  draHealthV1alpha1Api,
  draHealthV1Api,
  draV1Api,
  draV1beta1Api,
  PLUGIN_TYPE_DRA,
  registrationApi,
  type Claim__Output,
  type Device,
  type DeviceHealth,
  type DRAPluginHandlers,
  type DRAResourceHealthHandlers,
  type NodePrepareResourceResponse,
  type NodeUnprepareResourceResponse,
  type NodeWatchResourcesRequest__Output,
  type NodeWatchResourcesResponse,
  type RegistrationHandlers,
} from '../../protos/dra.ts';
import { listIds } from '../deviceplugin/allocate.ts';

export interface DraClaimRef {
  namespace: string;
  uid: string;
  name: string;
}

/** One device of a prepared claim, as the kubelet is told. */
export interface PreparedDevice {
  /** The claim's requests this device serves; empty means all. */
  requestNames: string[];
  poolName: string;
  deviceName: string;
  cdiDeviceIds: string[];
  /** The allocation's shareID (consumable capacity); sent on v1 only, v1beta1 has no such field. */
  shareId?: string;
}

export type PrepareOutcome = { devices: PreparedDevice[] } | { error: string };

/** Prepares and unprepares claims on the host. Results are keyed by claim UID. */
export interface DraDriver {
  prepare(claims: DraClaimRef[]): Promise<Map<string, PrepareOutcome>>;
  unprepare(claims: DraClaimRef[]): Promise<Map<string, { error?: string }>>;
}

export interface DeviceHealthView {
  poolName: string;
  deviceName: string;
  healthy: boolean;
  message: string;
}

/** The devices' health now, and a way to hear when it changes. subscribe returns the unsubscribe function. */
export interface HealthSource {
  current(): DeviceHealthView[];
  subscribe(listener: () => void): () => void;
}

export interface DraKubeletPluginOptions {
  /** The DRA driver name (lower-case DNS subdomain), as in ResourceSlice spec.driver. */
  driverName: string;
  /** The driver's directory under the kubelet's plugins directory: <kubelet>/plugins/<driver>. */
  pluginDir: string;
  /** The kubelet's plugin registry directory: <kubelet>/plugins_registry. */
  registryDir: string;
  driver: DraDriver;
  health: HealthSource;
  logger: Logger;
  /** Called each time the kubelet reports a successful registration. */
  onRegistered?: () => void;
  /** DeviceHealth.health_check_timeout_seconds. When unspecified, 30. */
  healthCheckTimeoutSeconds?: number;
}

/** File name of the DRA socket inside pluginDir. */
export const DRA_SOCKET = 'dra.sock';
/** File name of the registration socket inside registryDir. */
export const registrationSocketName = (driverName: string) => `${driverName}-reg.sock`;

const DEFAULT_HEALTH_TIMEOUT_S = 30;
/** Longest error text sent back or logged for one claim; driver messages are cut, not dropped. */
const MAX_ERROR_CHARS = 1000;

/** Cuts a message to MAX_ERROR_CHARS, saying how long it was: a per-claim error ends up in pod events. */
export function bounded(text: string, max = MAX_ERROR_CHARS): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
}

function rpcError(code: grpcStatus, details: string): Partial<ServerErrorResponse> {
  return { code, details, message: details };
}

/** A request the handlers refuse whole (INVALID_ARGUMENT): the response map could not be keyed right. */
class BadRequest extends Error {}

/**
 * The claims of a request, checked. Every claim needs a UID (the response is keyed by it) and UIDs must
 * be distinct (two entries cannot share a key); anything else is answered per claim.
 */
function checkedClaims(claims: readonly Claim__Output[] | undefined, what: string): DraClaimRef[] {
  const refs = (claims ?? []).map((c) => ({ namespace: c?.namespace ?? '', uid: c?.uid ?? '', name: c?.name ?? '' }));
  const noUid = refs.flatMap((c, i) => (c.uid === '' ? [`#${i} (${c.namespace || '?'}/${c.name || '?'})`] : []));
  if (noUid.length > 0) throw new BadRequest(`${what}: ${noUid.length} of ${refs.length} claims have no uid: ${listIds(noUid)}`);
  const seen = new Set<string>();
  const dupes = new Set<string>();
  for (const c of refs) (seen.has(c.uid) ? dupes : seen).add(c.uid);
  if (dupes.size > 0) throw new BadRequest(`${what}: claim uids repeated: ${listIds([...dupes])}`);
  return refs;
}

const claimName = (c: DraClaimRef) => bounded(`${c.namespace}/${c.name}`, 200);

/** A claim the driver cannot act on: it reads the claim by namespace and name. */
function unnamed(c: DraClaimRef): string | null {
  return c.namespace === '' || c.name === '' ? `claim ${bounded(c.uid, 80)} has no ${c.namespace === '' ? 'namespace' : 'name'}` : null;
}

function toWireDevice(d: PreparedDevice, withShareId: boolean): Device {
  const out: Device = {
    request_names: [...(d.requestNames ?? [])],
    pool_name: d.poolName,
    device_name: d.deviceName,
    cdi_device_ids: [...(d.cdiDeviceIds ?? [])],
  };
  if (withShareId && d.shareId) out.share_id = d.shareId;
  return out;
}

const NO_RESULT = 'the driver returned no result for this claim';

function prepareEntry(outcome: PrepareOutcome | undefined, withShareId: boolean): NodePrepareResourceResponse {
  if (outcome === undefined || outcome === null) return { devices: [], error: NO_RESULT };
  if ('error' in outcome)
    return { devices: [], error: bounded(outcome.error || 'the driver failed to prepare the claim without saying why') };
  try {
    return { devices: (outcome.devices ?? []).map((d) => toWireDevice(d, withShareId)), error: '' };
  } catch (err) {
    // A driver bug must cost this claim, not the whole response.
    return { devices: [], error: `the driver returned a malformed result: ${bounded((err as Error)?.message ?? String(err))}` };
  }
}

/**
 * DRAPlugin handlers. The same for v1 and v1beta1; `withShareId` is false for v1beta1, whose Device has no
 * share_id. The response has exactly one entry per claim of the request: a claim without one would be
 * prepared again later, and a driver that throws still gets its message to the kubelet (and the pod's events).
 */
export function draPluginHandlers(driver: DraDriver, log: Logger, withShareId: boolean): DRAPluginHandlers {
  return {
    NodePrepareResources: (call, cb) => {
      let refs: DraClaimRef[];
      try {
        refs = checkedClaims(call.request.claims, 'NodePrepareResources');
      } catch (err) {
        return reject(err, cb, log);
      }
      void forEachClaim(refs, (ok) => driver.prepare(ok), 'prepare', log).then((results) => {
        const claims: Record<string, NodePrepareResourceResponse> = {};
        for (const c of refs) {
          const r = results.get(c.uid)!;
          claims[c.uid] = 'error' in r ? { devices: [], error: r.error } : prepareEntry(r.result, withShareId);
        }
        cb(null, { claims });
      });
    },

    NodeUnprepareResources: (call, cb) => {
      let refs: DraClaimRef[];
      try {
        refs = checkedClaims(call.request.claims, 'NodeUnprepareResources');
      } catch (err) {
        return reject(err, cb, log);
      }
      void forEachClaim(refs, (ok) => driver.unprepare(ok), 'unprepare', log).then((results) => {
        const claims: Record<string, NodeUnprepareResourceResponse> = {};
        for (const c of refs) {
          const r = results.get(c.uid)!;
          if ('error' in r) claims[c.uid] = { error: r.error };
          else if (r.result === undefined) claims[c.uid] = { error: NO_RESULT };
          else claims[c.uid] = { error: bounded(r.result.error ?? '') };
        }
        cb(null, { claims });
      });
    },
  };
}

function reject(err: unknown, cb: (e: Partial<ServerErrorResponse>) => void, log: Logger): void {
  const bad = err instanceof BadRequest;
  const message = bad ? err.message : `unexpected failure: ${bounded((err as Error)?.message ?? String(err))}`;
  log.warn('request rejected', { err: message });
  cb(rpcError(bad ? grpcStatus.INVALID_ARGUMENT : grpcStatus.INTERNAL, message));
}

/** Per claim: an error this layer answers with, or what the driver returned (undefined: nothing). */
type ClaimResult<R> = { error: string } | { result: R | undefined };

/**
 * Calls the driver with the claims it can act on and gives every claim a result: claims without namespace
 * or name are answered here, and a driver that throws answers, with its message, for all it was given.
 * Never rejects.
 */
async function forEachClaim<R>(
  refs: DraClaimRef[],
  call: (claims: DraClaimRef[]) => Promise<Map<string, R>>,
  verb: 'prepare' | 'unprepare',
  log: Logger,
): Promise<Map<string, ClaimResult<R>>> {
  const results = new Map<string, ClaimResult<R>>();
  const ok: DraClaimRef[] = [];
  for (const c of refs) {
    const bad = unnamed(c);
    if (bad) results.set(c.uid, { error: bad });
    else ok.push(c);
  }
  if (ok.length === 0) return results;
  try {
    const out = await call(ok);
    for (const c of ok) results.set(c.uid, { result: out?.get(c.uid) });
    const missing = ok.filter((c) => out?.get(c.uid) === undefined);
    if (missing.length > 0) log.warn(`driver returned no ${verb} result for some claims`, { claims: listIds(missing.map(claimName)) });
  } catch (err) {
    log.error(`${verb} failed`, { claims: listIds(ok.map(claimName)), ...errFields(err) });
    const error = `failed to ${verb} the claim: ${bounded((err as Error)?.message ?? String(err))}`;
    for (const c of ok) results.set(c.uid, { error });
  }
  return results;
}

/**
 * DRAResourceHealth handler (v1 and v1alpha1 alike): the current list at once, then the whole list again
 * whenever the source notifies, until the kubelet cancels the call or the server stops. The list is also
 * resent every half health-check timeout: health_check_timeout_seconds tells the kubelet how long a report
 * holds, after which it takes the device's health as unknown, so a quiet stream must still refresh it.
 */
export function healthHandlers(health: HealthSource, timeoutSeconds: number, log: Logger): DRAResourceHealthHandlers {
  return {
    NodeWatchResources: (call: ServerWritableStream<NodeWatchResourcesRequest__Output, NodeWatchResourcesResponse>) => {
      const send = () => {
        if (call.cancelled || !call.writable) return;
        try {
          call.write({ devices: healthList(health.current(), timeoutSeconds) });
        } catch (err) {
          log.warn('health not sent', errFields(err));
        }
      };
      const unsubscribe = health.subscribe(send);
      const timer = setInterval(send, Math.max(1, timeoutSeconds / 2) * 1000);
      timer.unref();
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearInterval(timer);
        unsubscribe();
      };
      call.on('cancelled', finish);
      call.on('close', finish);
      call.on('error', finish);
      send();
    },
  };
}

function healthList(devices: readonly DeviceHealthView[], timeoutSeconds: number): DeviceHealth[] {
  const now = Math.floor(Date.now() / 1000);
  return devices.map((d) => ({
    device: { pool_name: d.poolName, device_name: d.deviceName },
    health: d.healthy ? 'HEALTHY' : 'UNHEALTHY',
    last_updated_time: now,
    health_check_timeout_seconds: timeoutSeconds,
    message: bounded(d.message ?? ''),
  }));
}

function removeSocket(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Binds a fresh server on a Unix socket, replacing a socket file left by an earlier run (bind would fail). */
async function listen(server: Server, path: string): Promise<void> {
  removeSocket(path);
  await new Promise<void>((ok, fail) =>
    server.bindAsync(`unix://${path}`, ServerCredentials.createInsecure(), (err) => (err ? fail(err) : ok())),
  );
}

export class DraKubeletPlugin {
  /** Absolute path of the DRA socket (PluginInfo.endpoint). */
  readonly endpoint: string;
  /** Absolute path of the registration socket. */
  readonly registrationSocket: string;
  readonly #o: DraKubeletPluginOptions;
  readonly #log: Logger;
  #dra: Server | null = null;
  #reg: Server | null = null;
  #registered = false;

  constructor(options: DraKubeletPluginOptions) {
    const timeout = options.healthCheckTimeoutSeconds;
    if (timeout !== undefined && !(Number.isSafeInteger(timeout) && timeout > 0))
      throw new RangeError(`healthCheckTimeoutSeconds must be a positive whole number of seconds, not ${timeout}`);
    this.#o = options;
    this.#log = options.logger;
    this.endpoint = resolve(options.pluginDir, DRA_SOCKET);
    this.registrationSocket = resolve(options.registryDir, registrationSocketName(options.driverName));
  }

  /** Whether the kubelet's last NotifyRegistrationStatus said registered. */
  get registered(): boolean {
    return this.#registered;
  }

  /** Serves the DRA socket, then the registration socket. Rejects (after cleaning up) if either cannot listen. */
  async start(): Promise<void> {
    try {
      mkdirSync(this.#o.pluginDir, { recursive: true });
      this.#dra = this.#draServer();
      await listen(this.#dra, this.endpoint);
      this.#log.info('serving DRA', { socket: this.endpoint, services: [...DRA_PLUGIN_SERVICES, ...DRA_HEALTH_SERVICES] });
      // Only now: the kubelet may call the DRA socket as soon as it has read GetInfo.
      mkdirSync(this.#o.registryDir, { recursive: true });
      this.#reg = this.#registrationServer();
      await listen(this.#reg, this.registrationSocket);
      this.#log.info('waiting for the kubelet to register the driver', { socket: this.registrationSocket, driver: this.#o.driverName });
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Stops both servers and removes both sockets (registration first: the kubelet stops calling). Safe to call twice. */
  async stop(): Promise<void> {
    const reg = this.#reg;
    const dra = this.#dra;
    this.#reg = null;
    this.#dra = null;
    this.#registered = false;
    reg?.forceShutdown();
    this.#quietRemove(this.registrationSocket);
    dra?.forceShutdown(); // ends the health streams now
    this.#quietRemove(this.endpoint);
  }

  #quietRemove(path: string): void {
    try {
      removeSocket(path);
    } catch (err) {
      this.#log.warn('socket not removed', { socket: path, ...errFields(err) });
    }
  }

  #draServer(): Server {
    const server = new Server();
    const log = this.#log.child({ api: 'DRAPlugin' });
    server.addService(draV1Api().DRAPlugin.service, draPluginHandlers(this.#o.driver, log, true));
    server.addService(draV1beta1Api().DRAPlugin.service, draPluginHandlers(this.#o.driver, log, false));
    const health = healthHandlers(
      this.#o.health,
      this.#o.healthCheckTimeoutSeconds ?? DEFAULT_HEALTH_TIMEOUT_S,
      this.#log.child({ api: 'health' }),
    );
    server.addService(draHealthV1Api().DRAResourceHealth.service, health);
    server.addService(draHealthV1alpha1Api().DRAResourceHealth.service, health);
    return server;
  }

  #registrationServer(): Server {
    const server = new Server();
    const handlers: RegistrationHandlers = {
      GetInfo: (_call, cb) =>
        cb(null, {
          type: PLUGIN_TYPE_DRA,
          name: this.#o.driverName,
          endpoint: this.endpoint,
          supported_versions: [...DRA_PLUGIN_SERVICES, ...DRA_HEALTH_SERVICES],
        }),
      NotifyRegistrationStatus: (call, cb) => {
        this.#registered = call.request.plugin_registered === true;
        if (this.#registered) {
          this.#log.info('registered with the kubelet', { driver: this.#o.driverName });
          this.#o.onRegistered?.();
        } else {
          this.#log.error('the kubelet refused the registration', { driver: this.#o.driverName, err: bounded(call.request.error ?? '') });
        }
        cb(null, {});
      },
    };
    server.addService(registrationApi().Registration.service, handlers);
    return server;
  }
}

/**
 * A stand-in kubelet that speaks the real device plugin gRPC API on unix sockets, the way the
 * kubelet's device manager does: it serves Registration on <dir>/kubelet.sock; on Register it checks
 * the version and resource name, dials the plugin's endpoint, asks GetDevicePluginOptions before
 * answering, then follows ListAndWatch. A restart wipes every socket in the directory (as the
 * kubelet's CleanupPluginDirectory does) and serves a new kubelet.sock.
 *
 * `npm run demo:local`'s kubelet (no cluster there), and the kubelet of the integration tests and the
 * device-plugin benchmark. Development code: it is not in the image or the bundle.
 */
import {
  credentials,
  Server,
  ServerCredentials,
  status,
  type ClientReadableStream,
  type sendUnaryData,
  type ServerUnaryCall,
} from '@grpc/grpc-js';
import { readdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import {
  DEVICE_PLUGIN_API_VERSION,
  devicePluginApi,
  KUBELET_SOCKET,
  type AllocateResponse__Output,
  type Device__Output,
  type DevicePluginClient,
  type DevicePluginOptions__Output,
  type ListAndWatchResponse__Output,
  type PreferredAllocationResponse__Output,
  type RegisterRequest__Output,
} from '../protos/deviceplugin.ts';
import { podResourcesApi, type PodResources } from '../protos/podresources.ts';

export interface PluginConnection {
  request: RegisterRequest__Output;
  client: DevicePluginClient;
  options: DevicePluginOptions__Output;
  /** Every ListAndWatch message received, in order. */
  updates: Device__Output[][];
  stream: ClientReadableStream<ListAndWatchResponse__Output>;
  streamEnded: boolean;
}

export class StandInKubelet {
  readonly dir: string;
  #server: Server | null = null;
  #podResourcesServer: Server | null = null;
  /** What the PodResources API answers to List (set by the test). */
  podResources: PodResources[] = [];
  readonly registrations: PluginConnection[] = [];
  #waiters = new Set<() => void>();

  constructor(dir: string) {
    this.dir = dir;
  }

  get socketPath(): string {
    return join(this.dir, KUBELET_SOCKET);
  }

  /** The newest connection (after a restart, the re-registration). */
  get current(): PluginConnection | undefined {
    return this.registrations.at(-1);
  }

  /** The device list of the newest ListAndWatch message. */
  get devices(): Device__Output[] {
    return this.current?.updates.at(-1) ?? [];
  }

  async start(): Promise<void> {
    try {
      unlinkSync(this.socketPath);
    } catch {
      /* absent */
    }
    const server = new Server();
    server.addService(devicePluginApi().Registration.service, {
      Register: (call: ServerUnaryCall<RegisterRequest__Output, object>, cb: sendUnaryData<object>) => {
        this.#onRegister(call.request).then(
          () => cb(null, {}),
          (err: Error) => cb({ code: status.FAILED_PRECONDITION, details: err.message }),
        );
      },
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${this.socketPath}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    this.#server = server;
  }

  async #onRegister(req: RegisterRequest__Output): Promise<void> {
    if (req.version !== DEVICE_PLUGIN_API_VERSION) throw new Error(`unsupported version ${req.version}`);
    if (!/^[a-z0-9.-]+\/[a-z0-9.-]+$/.test(req.resource_name) || req.resource_name.startsWith('kubernetes.io/'))
      throw new Error(`invalid extended resource name ${req.resource_name}`);
    const DevicePlugin = devicePluginApi().DevicePlugin;
    const client = new DevicePlugin(`unix://${join(this.dir, req.endpoint)}`, credentials.createInsecure(), {
      'grpc.default_authority': 'localhost',
    });
    const options = await new Promise<DevicePluginOptions__Output>((resolve, reject) =>
      client.GetDevicePluginOptions({}, { deadline: Date.now() + 10_000 }, (err, res) => (err || !res ? reject(err) : resolve(res))),
    );
    const stream = client.ListAndWatch({});
    const conn: PluginConnection = { request: req, client, options, updates: [], stream, streamEnded: false };
    stream.on('data', (msg: ListAndWatchResponse__Output) => {
      conn.updates.push(msg.devices);
      this.#notify();
    });
    const ended = () => {
      conn.streamEnded = true;
      this.#notify();
    };
    stream.on('end', ended);
    stream.on('error', ended);
    this.registrations.push(conn);
    this.#notify();
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Resolves when `predicate` holds (checked on every registration and stream message). */
  waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
    });
  }

  allocate(ids: string[][]): Promise<AllocateResponse__Output> {
    const conn = this.#need();
    return new Promise((resolve, reject) =>
      conn.client.Allocate({ container_requests: ids.map((d) => ({ devices_ids: d })) }, (err, res) =>
        err || !res ? reject(err) : resolve(res),
      ),
    );
  }

  preferred(available: string[], mustInclude: string[], size: number): Promise<PreferredAllocationResponse__Output> {
    const conn = this.#need();
    return new Promise((resolve, reject) =>
      conn.client.GetPreferredAllocation(
        { container_requests: [{ available_deviceIDs: available, must_include_deviceIDs: mustInclude, allocation_size: size }] },
        (err, res) => (err || !res ? reject(err) : resolve(res)),
      ),
    );
  }

  #need(): PluginConnection {
    const conn = this.current;
    if (!conn) throw new Error('no plugin registered');
    return conn;
  }

  /** Serves the PodResources API (List) on `socketPath`, answering with `this.podResources`. */
  async servePodResources(socketPath: string): Promise<void> {
    const server = new Server();
    server.addService(podResourcesApi().PodResourcesLister.service, {
      List: (_call: ServerUnaryCall<object, object>, cb: sendUnaryData<object>) => cb(null, { pod_resources: this.podResources }),
      GetAllocatableResources: (_call: ServerUnaryCall<object, object>, cb: sendUnaryData<object>) => cb(null, { devices: [] }),
      Get: (_call: ServerUnaryCall<object, object>, cb: sendUnaryData<object>) =>
        cb({ code: status.UNIMPLEMENTED, details: 'not in the stand-in' }),
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${socketPath}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    this.#podResourcesServer = server;
  }

  /** What a kubelet restart does to the directory: every socket removed, then a new kubelet.sock. */
  async restart(): Promise<void> {
    await this.stop();
    for (const name of readdirSync(this.dir)) {
      const p = join(this.dir, name);
      try {
        if (statSync(p).isSocket()) unlinkSync(p);
      } catch {
        /* raced */
      }
    }
    await this.start();
  }

  async stop(): Promise<void> {
    for (const c of this.registrations) {
      c.stream.cancel();
      c.client.close();
    }
    const server = this.#server;
    this.#server = null;
    if (server) await new Promise<void>((r) => server.tryShutdown(() => r()));
    this.#podResourcesServer?.forceShutdown();
    this.#podResourcesServer = null;
    try {
      unlinkSync(this.socketPath);
    } catch {
      /* gone */
    }
  }
}

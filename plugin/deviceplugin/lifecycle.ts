/**
 * Device plugin lifecycle: serve the handlers on <dir>/<socket>, register with <dir>/kubelet.sock,
 * then watch both sockets. When the kubelet restarts it wipes the directory and recreates
 * kubelet.sock; when either our socket disappears or kubelet.sock changes identity, tear the server
 * down (ending the ListAndWatch streams first, so a stale stream cannot disconnect the new
 * registration) and start again. Knows nothing about devices.
 */
import { credentials, Server, ServerCredentials, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { statSync, unlinkSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../common/log.ts';
import { errFields } from '../../common/log.ts';
import { DEVICE_PLUGIN_API_VERSION, devicePluginApi, KUBELET_SOCKET, type DevicePluginOptions } from '../../protos/deviceplugin.ts';

export interface LifecycleOptions {
  /** The kubelet's device-plugin directory. */
  dir: string;
  socketName: string;
  resourceName: string;
  options: DevicePluginOptions;
  handlers: UntypedServiceImplementation;
  logger: Logger;
  /** How often the sockets are checked (a directory watch also triggers checks). When unspecified, 250 ms. */
  pollMs?: number;
  /** Delay between registration attempts while the kubelet is absent. When unspecified, 500 ms. */
  retryMs?: number;
  /** Deadline of one Register call. When unspecified, 5000 ms. */
  registerTimeoutMs?: number;
  onRegistered?: () => void;
  onRestart?: (reason: string) => void;
}

type Identity = { ino: number; dev: number } | null;

function identity(path: string): Identity {
  try {
    const st = statSync(path);
    return st.isSocket() ? { ino: st.ino, dev: st.dev } : null;
  } catch {
    return null;
  }
}

const same = (a: Identity, b: Identity) => a !== null && b !== null && a.ino === b.ino && a.dev === b.dev;

export class DevicePluginLifecycle {
  readonly #o: Required<Omit<LifecycleOptions, 'onRegistered' | 'onRestart'>> & Pick<LifecycleOptions, 'onRegistered' | 'onRestart'>;
  #server: Server | null = null;
  #stopped = false;
  #timer: NodeJS.Timeout | null = null;
  #watcher: FSWatcher | null = null;
  #ownSocket: Identity = null;
  #kubeletSocket: Identity = null;
  #registered = false;
  #cycle = 0;
  #restarting = false;

  constructor(options: LifecycleOptions) {
    this.#o = { pollMs: 250, retryMs: 500, registerTimeoutMs: 5000, ...options };
  }

  get socketPath(): string {
    return join(this.#o.dir, this.#o.socketName);
  }

  get registered(): boolean {
    return this.#registered;
  }

  /** Starts serving and registering; resolves once the gRPC server listens (registration continues in the background). */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#serve();
    this.#watch();
    void this.#registerLoop(this.#cycle);
  }

  /** Stops the server, removes the socket. Safe to call twice. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#watcher?.close();
    this.#watcher = null;
    await this.#teardown();
  }

  async #serve(): Promise<void> {
    this.#cycle++;
    this.#registered = false;
    const path = this.socketPath;
    try {
      unlinkSync(path); // a socket left by an earlier run would make bind fail
    } catch {
      /* absent */
    }
    const server = new Server();
    server.addService(devicePluginApi().DevicePlugin.service, this.#o.handlers);
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${path}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    this.#server = server;
    this.#ownSocket = identity(path);
    this.#o.logger.info('serving', { socket: path });
  }

  async #teardown(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    this.#registered = false;
    if (server) server.forceShutdown(); // ends the ListAndWatch streams now
    try {
      unlinkSync(this.socketPath);
    } catch {
      /* already gone */
    }
  }

  async #registerLoop(cycle: number): Promise<void> {
    let waitLogged = false;
    while (!this.#stopped && cycle === this.#cycle) {
      const kubelet = join(this.#o.dir, KUBELET_SOCKET);
      const id = identity(kubelet);
      if (!id && !waitLogged) {
        // Said once per registration attempt, not at every retry: a kubelet that is restarting is normal,
        // one that never comes means the directory is not the kubelet's (or the kubelet is down).
        this.#o.logger.warn('waiting for the kubelet: no kubelet.sock in the device-plugin directory yet; registering when it appears', {
          kubelet,
          resource: this.#o.resourceName,
        });
        waitLogged = true;
      }
      if (id) {
        try {
          await this.#register(kubelet);
          if (cycle !== this.#cycle || this.#stopped) return;
          this.#kubeletSocket = id;
          this.#registered = true;
          this.#o.logger.info('registered', { resource: this.#o.resourceName, kubelet });
          this.#o.onRegistered?.();
          return;
        } catch (err) {
          this.#o.logger.warn('registration failed; retrying', { ...errFields(err), retryMs: this.#o.retryMs });
        }
      }
      await new Promise((r) => setTimeout(r, this.#o.retryMs));
    }
  }

  #register(kubeletSocket: string): Promise<void> {
    const Registration = devicePluginApi().Registration;
    const client = new Registration(`unix://${kubeletSocket}`, credentials.createInsecure());
    return new Promise<void>((resolve, reject) => {
      client.Register(
        { version: DEVICE_PLUGIN_API_VERSION, endpoint: this.#o.socketName, resource_name: this.#o.resourceName, options: this.#o.options },
        { deadline: Date.now() + this.#o.registerTimeoutMs },
        (err) => {
          client.close();
          if (err) reject(err);
          else resolve();
        },
      );
    });
  }

  #watch(): void {
    const check = () => void this.#check();
    this.#timer = setInterval(check, this.#o.pollMs);
    this.#timer.unref();
    try {
      // inotify reacts within milliseconds; the poll above is the fallback (e.g. the directory itself replaced).
      this.#watcher = watch(this.#o.dir, { persistent: false }, check);
      this.#watcher.on('error', () => {
        this.#watcher?.close();
        this.#watcher = null;
      });
    } catch {
      this.#watcher = null;
    }
  }

  async #check(): Promise<void> {
    if (this.#stopped || this.#restarting) return;
    let reason: string | null = null;
    if (!this.#server) reason = 'server not running after a failed restart';
    else if (!same(identity(this.socketPath), this.#ownSocket)) reason = 'plugin socket removed';
    else if (this.#registered && !same(identity(join(this.#o.dir, KUBELET_SOCKET)), this.#kubeletSocket)) reason = 'kubelet.sock recreated';
    if (!reason) return;
    this.#restarting = true;
    try {
      this.#o.logger.warn('restarting device plugin', { reason });
      this.#o.onRestart?.(reason);
      await this.#teardown();
      if (this.#stopped) return;
      await this.#serve();
      void this.#registerLoop(this.#cycle);
    } catch (err) {
      this.#o.logger.error('restart failed; will retry', errFields(err));
      await this.#teardown(); // no server: the next check tries again
    } finally {
      this.#restarting = false;
    }
  }
}

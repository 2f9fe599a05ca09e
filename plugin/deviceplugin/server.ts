/**
 * The DevicePlugin RPC handlers over the published DeviceState. No sockets, no registration: the
 * lifecycle (lifecycle.ts) serves whatever handlers it is given.
 */
import { status as grpcStatus, type ServerErrorResponse } from '@grpc/grpc-js';
import type { Logger } from '../../common/log.ts';
import { errFields } from '../../common/log.ts';
import { InvalidRequestError } from '../../common/errors.ts';
import type { ContainerAllocateResponse, DevicePluginHandlers, DevicePluginOptions } from '../../protos/deviceplugin.ts';
import { buildContainerResponse, resolveGrant, type AllocateEnvironment } from './allocate.ts';
import type { DeviceState } from './device-state.ts';
import type { PrepareHost } from './host-prep.ts';
import { preferAllocation } from './preferred.ts';

export const PLUGIN_OPTIONS: DevicePluginOptions = { pre_start_required: false, get_preferred_allocation_available: true };

export interface ServerDeps {
  state: DeviceState;
  /** Probes the host (device nodes, interposer install) just before each Allocate. */
  environment: () => AllocateEnvironment;
  prepareHost: PrepareHost;
  logger: Logger;
  /** Called after each Allocate with the outcome (metrics). */
  onAllocate?: (outcome: 'ok' | 'invalid' | 'error') => void;
}

function rpcError(code: grpcStatus, details: string): Partial<ServerErrorResponse> {
  return { code, details, message: details };
}

export function createHandlers(deps: ServerDeps): DevicePluginHandlers {
  const log = deps.logger;
  return {
    GetDevicePluginOptions: (_call, cb) => cb(null, PLUGIN_OPTIONS),

    ListAndWatch: (call) => {
      const send = () => {
        if (!call.cancelled && call.writable) call.write({ devices: [...deps.state.devices] });
      };
      const unsubscribe = deps.state.subscribe(send);
      const done = () => unsubscribe();
      call.on('cancelled', done);
      call.on('close', done);
      call.on('error', done);
      send();
    },

    GetPreferredAllocation: (call, cb) => {
      const reqs = call.request.container_requests ?? [];
      const inventory = deps.state.inventory;
      cb(null, {
        container_responses: reqs.map((r) => ({
          deviceIDs: preferAllocation(
            { available: r.available_deviceIDs ?? [], mustInclude: r.must_include_deviceIDs ?? [], size: r.allocation_size ?? 0 },
            inventory,
          ),
        })),
      });
    },

    Allocate: (call, cb) => {
      const reqs = call.request.container_requests ?? [];
      try {
        if (reqs.length === 0) throw new InvalidRequestError('AllocateRequest has no container requests');
        const grants = reqs.map((r) => resolveGrant(r.devices_ids ?? [], deps.state.inventory));
        const container_responses: ContainerAllocateResponse[] = [];
        for (const grant of grants) {
          deps.prepareHost(grant);
          container_responses.push(buildContainerResponse(grant, deps.environment()));
          log.info('allocated', { gpu: grant.gpu.address, slots: grant.slotIds, allocId: grant.allocId });
        }
        deps.onAllocate?.('ok');
        cb(null, { container_responses });
      } catch (err) {
        if (err instanceof InvalidRequestError) {
          deps.onAllocate?.('invalid');
          log.warn('allocate rejected', errFields(err));
          cb(rpcError(grpcStatus.INVALID_ARGUMENT, err.message));
        } else {
          deps.onAllocate?.('error');
          log.error('allocate failed', errFields(err));
          cb(rpcError(grpcStatus.INTERNAL, `failed to prepare the allocation: ${(err as Error).message}`));
        }
      }
    },

    PreStartContainer: (_call, cb) => cb(null, {}),
  };
}

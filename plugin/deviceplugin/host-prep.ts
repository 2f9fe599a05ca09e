/**
 * Host preparation for an allocation: a fresh, empty per-allocation stats directory. Kept apart from
 * the pure response builder; errors propagate so that Allocate fails instead of handing the kubelet
 * a mount that does not exist.
 *
 * Permissions are explicit (chmod after mkdir, so the umask cannot change them): 0755 for the state
 * directory, 01777 for an allocation's directory, because the container's processes may run as any
 * UID and must create the stats file there. The sticky bit keeps one UID from deleting another's file.
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { statsDirFor, type Grant } from './allocate.ts';

export type PrepareHost = (grant: Grant) => void;

export const STATE_DIR_MODE = 0o755;
export const ALLOCATION_DIR_MODE = 0o1777;

export function statsDirPreparer(stateDir: string): PrepareHost {
  // Synchronous on purpose: four local syscalls cost less than four hops through libuv's thread
  // pool, and the kubelet sends Allocates one at a time anyway.
  return (grant) => {
    mkdirSync(stateDir, { recursive: true, mode: STATE_DIR_MODE });
    const dir = statsDirFor(stateDir, grant.allocId);
    // A slot is allocated again only after its previous container is gone: start from nothing so
    // that an old stats file cannot be mistaken for the new container's.
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { mode: ALLOCATION_DIR_MODE });
    chmodSync(dir, ALLOCATION_DIR_MODE);
  };
}

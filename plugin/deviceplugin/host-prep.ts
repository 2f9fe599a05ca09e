/**
 * Host preparation for an allocation: a fresh, empty per-allocation stats directory. Kept apart from
 * the pure response builder; errors propagate so that Allocate fails instead of handing the kubelet
 * a mount that does not exist.
 *
 * Permissions are explicit (chmod after mkdir, so the umask cannot change them): 0755 for the state
 * directory, 01777 for an allocation's directory, because the container's processes may run as any
 * UID and must create the stats file there. The sticky bit keeps one UID from deleting another's file.
 *
 * The stats file itself is created here, empty, mode 0666, owned by the agent like its directory. With
 * fs.protected_regular=1 (systemd's default, so Ubuntu's and most distributions') the kernel refuses an
 * O_CREAT open of an existing file in a sticky world-writable directory when the file belongs to another
 * user than the opener *and* than the directory's owner: if the container's first CUDA process (UID A)
 * created the file, a process of UID B would get EACCES and fall back to accounting of its own, outside the
 * container's shared budget. A file owned by the directory's owner is exempt, so every UID opens this one.
 * The interposer formats a file it finds empty (native/src/stats.c).
 */
import { chmodSync, closeSync, constants, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CONTAINER_PATHS } from '../../common/contracts/interposer.ts';
import { statsDirFor, type Grant } from './allocate.ts';

/** Only the allocation ID matters: the same preparation serves a device-plugin grant and a DRA claim's device. */
export type PrepareHost = (grant: Pick<Grant, 'allocId'>) => void;

export const STATE_DIR_MODE = 0o755;
export const ALLOCATION_DIR_MODE = 0o1777;
/** Any process of the container, whatever its UID, reads and writes the shared counters. */
export const STATS_FILE_MODE = 0o666;
const STATS_FILE = CONTAINER_PATHS.statsFile.slice(CONTAINER_PATHS.statsDir.length + 1);

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
    const file = join(dir, STATS_FILE);
    // O_EXCL | O_NOFOLLOW: the directory was just made empty, so anything there now was not made by us.
    closeSync(openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, STATS_FILE_MODE));
    chmodSync(file, STATS_FILE_MODE);
  };
}

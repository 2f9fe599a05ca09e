// The cluster's daemons as processes: started detached from the command lines in cluster.json, their pids in
// pid files, their output appended to <logDir>/<name>.log. No state in memory, so a test worker can stop and
// restart the kubelet that the vitest global setup started.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { NETNS, type ClusterInfo, type Paths } from './layout.ts';
import { alive, cmdline, killAndWait, waitFor } from './process.ts';

function pidFile(p: Paths, name: string): string {
  return path.join(p.pids, `${name}.pid`);
}

/** The daemon's pid while it runs; a recycled pid running something else does not count. */
export function daemonPid(info: ClusterInfo, name: string): number | undefined {
  const f = pidFile(info.paths, name);
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, 'utf8').trim());
  const spec = info.daemons[name];
  if (!spec || !alive(pid) || !cmdline(pid).includes(spec.argv[0]!)) return undefined;
  return pid;
}

/** Starts a daemon described in cluster.json, detached, logging (appending) to <logDir>/<name>.log. */
export function startDaemon(info: ClusterInfo, name: string): number {
  const spec = info.daemons[name];
  if (!spec) throw new Error(`unknown daemon ${name}`);
  if (daemonPid(info, name) !== undefined) throw new Error(`${name} is already running`);
  const log = path.join(info.paths.logDir, `${name}.log`);
  const fd = openSync(log, 'a');
  writeFileSync(fd, `\n===== ${new Date().toISOString()} starting: ${spec.argv.join(' ')}\n`);
  const [cmd, ...args] = spec.netns ? ['nsenter', `--net=/run/netns/${NETNS}`, '--', ...spec.argv] : spec.argv;
  const child = spawn(cmd!, args, { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  child.unref();
  mkdirSync(info.paths.pids, { recursive: true });
  writeFileSync(pidFile(info.paths, name), `${child.pid}\n`);
  return child.pid;
}

export async function stopDaemon(info: ClusterInfo, name: string, graceMs = 10_000): Promise<void> {
  const pid = daemonPid(info, name);
  if (pid !== undefined) await killAndWait([pid], name, graceMs);
  rmSync(pidFile(info.paths, name), { force: true });
}

/** The last lines of a daemon's log, for error messages. */
export function logTail(info: ClusterInfo | Paths, name: string, lines = 30): string {
  const p = 'paths' in info ? info.paths : info;
  try {
    return readFileSync(path.join(p.logDir, `${name}.log`), 'utf8')
      .trimEnd()
      .split('\n')
      .slice(-lines)
      .join('\n');
  } catch {
    return '(no log)';
  }
}

/** Waits for `probe` while the daemon lives; on a timeout or its exit, throws with the tail of its log. */
export async function waitDaemon(
  info: ClusterInfo,
  name: string,
  what: string,
  timeoutMs: number,
  probe: () => Promise<unknown> | unknown,
): Promise<void> {
  try {
    await waitFor(what, timeoutMs, async () => {
      if (daemonPid(info, name) === undefined) throw new Error(`${name} exited`);
      return (await probe()) ? true : undefined;
    });
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- last lines of ${info.paths.logDir}/${name}.log:\n${logTail(info, name)}`, { cause: e });
  }
}

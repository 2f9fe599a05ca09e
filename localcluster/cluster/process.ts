// Running commands and watching processes: the small helpers every stage of the local cluster uses. The
// cluster keeps no state in memory, so "is it running" is always asked of /proc.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Runs a command to completion and returns its stdout; throws with its stderr unless `allowFail`. */
export function run(cmd: string, args: string[], opts: { allowFail?: boolean; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, maxBuffer: 64 << 20 });
  if (r.error) {
    if (opts.allowFail) return '';
    throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  }
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

/** A finished command: its exit status, stdout and stderr together (`out`), and stdout alone. */
export interface Captured {
  status: number | null;
  out: string;
  stdout: string;
}

/** Runs a command and returns what it did without judging it: the caller decides what a failure means. */
export function capture(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Captured {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
}

/** The output of a captured command that must have succeeded; throws with all of its output if not. */
export function must(what: string, r: Captured): string {
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}):\n${r.out}`);
  return r.out;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a value (not undefined, false or null); the last error goes in the timeout message. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined> | T | undefined,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false && v !== null) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? `: last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** Alive and not a zombie: a killed daemon whose parent has not reaped it yet counts as gone. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

export function allPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/** SIGTERM, `graceMs` to exit, then SIGKILL; throws if any is still alive 10 s after that. */
export async function killAndWait(pids: number[], what: string, graceMs: number): Promise<void> {
  const live = pids.filter(alive);
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + graceMs;
  while (live.some(alive) && Date.now() < deadline) await sleep(100);
  for (const pid of live.filter(alive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  const hardDeadline = Date.now() + 10_000;
  while (live.some(alive) && Date.now() < hardDeadline) await sleep(100);
  const left = live.filter(alive);
  if (left.length > 0) throw new Error(`could not stop ${what}: pids ${left.join(', ')} still alive`);
}

/**
 * Whether the process behind a stats-file slot still runs.
 *
 * A slot stays LIVE in the file after its process is killed (SIGKILL, the OOM killer) until another CUDA
 * process of the same container reaps it, so counting LIVE slots counts the dead too. A slot carries the
 * process's pid *in the container's pid namespace* and its start time (field 22 of /proc/<pid>/stat, clock
 * ticks since boot), written by the interposer (native/include/emuv_contract.h). The agent sees the host's
 * /proc (`--proc-root`), where the same process has another pid; its `NSpid:` line lists the pid in every
 * namespace down to the container's, and its start time is the same number. A slot is live when some host
 * process has that innermost pid and that start time.
 *
 * What cannot be told, and how it is reported (docs/agent.md, "Live processes"):
 *  - no start time in the slot (0: the interposer could not read its own /proc), a /proc that cannot be
 *    listed or lists no process (not a procfs), or a kernel without `NSpid:` (before 4.1): `unknown`,
 *    counted as running;
 *  - two containers whose processes have the same in-container pid and started in the same clock tick:
 *    one live process makes both slots look live;
 *  - /proc mounted with hidepid, or a container in its own time namespace (its start times are shifted):
 *    its processes are not found and read as exited. Kubernetes sets up neither by default.
 *
 * Cost: a host pid once found is re-checked with one read of /proc/<pid>/stat; /proc is scanned only when
 * a slot appears that is neither found nor known to be gone, and a gone slot stays gone (a start time lies
 * in the past: no process can come to have it later).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export type Liveness = 'live' | 'gone' | 'unknown';

export interface SlotProcess {
  /** pid in the container's pid namespace */
  pid: number;
  /** /proc/<pid>/stat starttime as the interposer read it; 0n when it could not */
  startTime: bigint;
}

export interface ProcessLiveness {
  /** One verdict per slot, in order. */
  check(slots: readonly SlotProcess[]): Liveness[];
}

/** Start time (field 22) of a /proc/<pid>/stat line; null when it is not one. The name may hold spaces and parentheses. */
export function parseProcStatStartTime(text: string): bigint | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  // Fields after the name start with field 3 (state): field 22 is the 20th of them.
  const fields = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const v = fields[19];
  return v !== undefined && /^[0-9]{1,20}$/.test(v) ? BigInt(v) : null;
}

/** The innermost pid of a /proc/<pid>/status text (`NSpid:` line, last entry); null without one. */
export function parseInnermostPid(text: string): number | null {
  const m = /^NSpid:[ \t]*([0-9 \t]+)$/m.exec(text);
  if (!m) return null;
  const last = m[1]!.trim().split(/\s+/).at(-1)!;
  return /^[0-9]{1,10}$/.test(last) ? Number(last) : null;
}

const key = (s: SlotProcess) => `${s.pid}:${s.startTime}`;

/** Caches are dropped past this many entries (a node has at most 240 slots per container). */
const MAX_CACHED = 16_384;

export function procLiveness(procRoot: string): ProcessLiveness {
  const found = new Map<string, number>(); // slot key -> host pid
  const gone = new Set<string>();
  const read = (path: string): string | null => {
    try {
      return readFileSync(path, 'latin1');
    } catch {
      return null;
    }
  };
  const startTimeOf = (hostPid: number): bigint | null => {
    const text = read(join(procRoot, String(hostPid), 'stat'));
    return text === null ? null : parseProcStatStartTime(text);
  };

  /**
   * Looks for the wanted slots among all host processes; false when /proc cannot be listed or lists no
   * process at all (a procfs always lists some: that is a directory of other files, such as a test node's
   * fixture, where nothing can be told).
   */
  const scan = (wanted: Map<string, SlotProcess>): boolean => {
    let entries: string[];
    try {
      entries = readdirSync(procRoot).filter((name) => /^[0-9]+$/.test(name));
    } catch {
      return false;
    }
    if (entries.length === 0) return false;
    const startTimes = new Set([...wanted.values()].map((s) => s.startTime));
    for (const name of entries) {
      const hostPid = Number(name);
      const st = startTimeOf(hostPid);
      // The start time filters first: most host processes are not ours, and stat is the cheaper file.
      if (st === null || !startTimes.has(st)) continue;
      const status = read(join(procRoot, name, 'status'));
      const inner = status === null ? null : parseInnermostPid(status);
      if (inner === null) continue;
      const k = `${inner}:${st}`;
      if (wanted.has(k)) found.set(k, hostPid);
    }
    return true;
  };

  return {
    check(slots) {
      if (found.size > MAX_CACHED) found.clear();
      if (gone.size > MAX_CACHED) gone.clear();
      const verdicts: (Liveness | null)[] = slots.map((s) => {
        if (s.startTime === 0n || s.pid === 0) return 'unknown';
        const k = key(s);
        if (gone.has(k)) return 'gone';
        const hostPid = found.get(k);
        if (hostPid === undefined) return null;
        if (startTimeOf(hostPid) === s.startTime) return 'live';
        found.delete(k); // that host pid exited (or was reused): the process has ended
        gone.add(k);
        return 'gone';
      });
      const wanted = new Map<string, SlotProcess>();
      slots.forEach((s, i) => {
        if (verdicts[i] === null) wanted.set(key(s), s);
      });
      if (wanted.size > 0) {
        const listed = scan(wanted);
        for (const [k] of wanted) if (listed && !found.has(k)) gone.add(k);
        slots.forEach((s, i) => {
          if (verdicts[i] !== null) return;
          verdicts[i] = !listed ? 'unknown' : found.has(key(s)) ? 'live' : 'gone';
        });
      }
      return verdicts as Liveness[];
    },
  };
}

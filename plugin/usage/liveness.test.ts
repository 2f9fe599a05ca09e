import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../localcluster/repo.ts';
import { parseInnermostPid, parseProcStatStartTime, procLiveness } from './liveness.ts';

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => (tmp = tempDir()));
afterEach(() => tmp.cleanup());

/** A host process in a fake /proc: its host pid, its pid in the container, its start time. */
function proc(hostPid: number, innerPid: number, startTime: number): void {
  const dir = join(tmp.path, String(hostPid));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'stat'), `${hostPid} (a b) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 ${startTime} 0 0\n`);
  writeFileSync(join(dir, 'status'), `Name:\ta b\nNSpid:\t${hostPid}\t7\t${innerPid}\n`);
}

describe('parsers', () => {
  it('start time is field 22, after a name that may hold spaces and parentheses', () => {
    expect(parseProcStatStartTime('9 (x) y) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 123456 0')).toBe(123456n);
    expect(parseProcStatStartTime('9 (x) S 1')).toBeNull();
    expect(parseProcStatStartTime('garbage')).toBeNull();
  });
  it('the innermost pid is the last NSpid entry', () => {
    expect(parseInnermostPid('NSpid:\t4242\t17\t101\n')).toBe(101);
    expect(parseInnermostPid('NSpid:\t4242\n')).toBe(4242);
    expect(parseInnermostPid('Name: x\n')).toBeNull();
  });
});

describe('procLiveness', () => {
  it("live while a host process has the slot's pid (in its namespace) and start time; gone after", () => {
    proc(4242, 101, 5000);
    proc(4243, 202, 6000);
    const l = procLiveness(tmp.path);
    const slots = [
      { pid: 101, startTime: 5000n },
      { pid: 202, startTime: 7000n }, // pid 202 exists, but started at another time: the pid was reused
      { pid: 303, startTime: 5000n }, // the start time exists, for another pid
    ];
    expect(l.check(slots)).toEqual(['live', 'gone', 'gone']);
    rmSync(join(tmp.path, '4242'), { recursive: true });
    expect(l.check(slots)).toEqual(['gone', 'gone', 'gone']);
  });

  it('a host pid reused by a process that started later: gone, not live', () => {
    proc(4242, 101, 5000);
    const l = procLiveness(tmp.path);
    expect(l.check([{ pid: 101, startTime: 5000n }])).toEqual(['live']);
    proc(4242, 101, 9000);
    expect(l.check([{ pid: 101, startTime: 5000n }])).toEqual(['gone']);
  });

  it('cannot tell: no start time in the slot, or no /proc to look in', () => {
    proc(4242, 101, 5000);
    expect(procLiveness(tmp.path).check([{ pid: 101, startTime: 0n }])).toEqual(['unknown']);
    expect(procLiveness(join(tmp.path, 'nope')).check([{ pid: 101, startTime: 5000n }])).toEqual(['unknown']);
    // A directory that lists no process at all is not a process table (a test node's fixture /proc).
    const fixture = join(tmp.path, 'fixture');
    mkdirSync(join(fixture, 'driver'), { recursive: true });
    writeFileSync(join(fixture, 'meminfo'), 'MemTotal: 1 kB\n');
    expect(procLiveness(fixture).check([{ pid: 101, startTime: 5000n }])).toEqual(['unknown']);
  });
});

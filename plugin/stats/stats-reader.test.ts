import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NODE_BIN } from '../../localcluster/repo.ts';
import { mergeCopies, parseStats, readStatsFile, STATS_V1, StatsEmptyError, StatsFormatError } from './stats-reader.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const GOLDEN = join(ROOT, 'test', 'fixtures', 'stats', 'golden-v1.bin');
const Mi = 1n << 20n;
const Gi = 1n << 30n;

const golden = (): Buffer => readFileSync(GOLDEN);
const TMP = mkdtempSync(join(tmpdir(), 'emuv-stats-test-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));
let tmpCount = 0;
const tmpFile = (): string => join(TMP, `stats-${tmpCount++}.bin`);

describe('stats file v1: golden file written by the C tests (native/tests/test_golden.c)', () => {
  it('decodes header, per-device config and container totals', () => {
    const s = parseStats(golden());
    expect(s.versionMajor).toBe(1);
    expect(s.versionMinor).toBe(1);
    expect(s.generation).toBe(3n);
    expect(s.createdNs).toBe(1764250000123456789n);
    expect(s.vramMode).toBe('fixed');
    expect(s.contractVersion).toBe(1);
    expect(s.gpu).toBe('GPU-5a3c1e0e-7f6b-4c1a-9d2e-0123456789ab');
    expect(s.devices).toHaveLength(1);
    expect(s.devices[0]!.config).toEqual({
      vramShare: 7680n * Mi,
      limitBytes: 28n * Gi,
      hostShare: 28n * Gi - 7680n * Mi,
      headroom: 256n * Mi,
      largeThreshold: 64n * Mi,
    });
    expect(s.devices[0]!.totals).toEqual({
      vramUsed: 7168n * Mi,
      hostUsed: 2n * Gi,
      totalUsed: 9216n * Mi,
      vramPeak: 7424n * Mi,
      hostPeak: 2n * Gi,
      spillEvents: 1n,
      oomEvents: 1n,
      deniedRetries: 1n,
      overhead: 600n * Mi,
    });
  });

  it('lists the live processes only, with their counters and seqlock state', () => {
    const s = parseStats(golden());
    expect(s.consistent).toBe(true);
    expect(s.processes.map((p) => p.pid)).toEqual([101, 202]);
    const [a, b] = s.processes;
    expect(a).toMatchObject({
      index: 0,
      pid: 101,
      hostPid: 40101,
      startTime: 5000n,
      lastUpdateNs: 1764250001000000000n,
      seq: 2n << 16n,
      consistent: true,
    });
    expect(a!.devices[0]).toEqual({ vram: 6656n * Mi, host: 2n * Gi, managed: 0n, pinnedHost: 64n * Mi, allocs: 2n, frees: 0n });
    expect(b).toMatchObject({ index: 1, pid: 202, hostPid: 0, seq: 3n << 16n });
    // Minor 1: what each process holds in the container's totals, which a reaper gives back.
    expect(a!.flags & STATS_V1.slotFlagHeld).toBe(STATS_V1.slotFlagHeld);
    expect(a!.held).toEqual({ total: 6656n * Mi + 2n * Gi, vram: 6656n * Mi, host: 2n * Gi });
    expect(b!.held).toEqual({ total: 512n * Mi, vram: 512n * Mi, host: 0n });
    expect(b!.devices[0]).toEqual({ vram: 512n * Mi, host: 0n, managed: 32n * Mi, pinnedHost: 0n, allocs: 2n, frees: 1n });
  });

  it('reads the same values from a copy at any alignment (the aligned fast path and the byte-wise one agree)', () => {
    const g = golden();
    const backing = Buffer.alloc(g.length + 8);
    for (const shift of [0, 1, 3, 4, 8]) {
      const view = backing.subarray(shift, shift + g.length);
      g.copy(view);
      expect(parseStats(view), `offset ${shift}`).toEqual(parseStats(g));
    }
  });

  it('readStatsFile on the golden file is consistent and equals parseStats', () => {
    expect(readStatsFile(GOLDEN)).toEqual(parseStats(golden()));
  });

  it('the C writer regenerates the committed golden file byte for byte', () => {
    execFileSync('make', ['-s', '-C', join(ROOT, 'native'), 'golden-tool'], { stdio: 'pipe' });
    const out = tmpFile();
    execFileSync(join(ROOT, 'native', 'build', 'tests', 'test_golden'), [out]);
    expect(Buffer.compare(readFileSync(out), golden())).toBe(0);
  });
});

describe('stats file v1: strict format checks', () => {
  const mutate = (f: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(golden());
    f(b);
    return b;
  };
  it.each([
    ['wrong magic', (b: Buffer) => b.writeUInt32LE(0x12345678, 0), /bad magic/],
    ['another major version', (b: Buffer) => b.writeUInt16LE(2, 4), /major version 2/],
    ['not initialised', (b: Buffer) => b.writeUInt32LE(1, 24), /not initialised/],
    ['other slot size', (b: Buffer) => b.writeUInt32LE(512, 12), /geometry/],
    ['device count 0', (b: Buffer) => b.writeUInt32LE(0, 28), /device count/],
    ['unknown mode', (b: Buffer) => b.writeUInt32LE(7, 48), /VRAM mode/],
  ])('rejects %s', (_name, f, msg) => {
    expect(() => parseStats(mutate(f))).toThrow(StatsFormatError);
    expect(() => parseStats(mutate(f))).toThrow(msg);
  });
  it('rejects short files', () => {
    expect(() => parseStats(Buffer.alloc(100))).toThrow(/too short/);
    expect(() => parseStats(golden().subarray(0, STATS_V1.hdrSize + 10))).toThrow(/too short/);
  });
  it('a slot without the held flag (a minor-0 writer) has no held counters', () => {
    const s = parseStats(mutate((b) => b.writeUInt32LE(0, STATS_V1.hdrSize + 12)));
    expect(s.processes[0]).toMatchObject({ flags: 0, held: null });
  });
  it('accepts a newer minor version', () => {
    expect(parseStats(mutate((b) => b.writeUInt16LE(3, 6))).versionMinor).toBe(3);
  });
});

describe('stats file v1: seqlock', () => {
  const slotSeq = (b: Buffer, i: number, v: bigint) => b.writeBigUInt64LE(v, STATS_V1.hdrSize + i * STATS_V1.slotSize + 16);
  it('a slot with an update in progress is not consistent', () => {
    const b = Buffer.from(golden());
    slotSeq(b, 1, (3n << 16n) + 1n);
    const s = parseStats(b);
    expect(s.consistent).toBe(false);
    expect(s.processes[1]!.consistent).toBe(false);
    expect(s.processes[0]!.consistent).toBe(true);
  });
  it('two copies whose seq differ, or whose totals differ, are not consistent', () => {
    const a = parseStats(golden());
    const moved = Buffer.from(golden());
    slotSeq(moved, 0, 5n << 16n);
    expect(mergeCopies(a, parseStats(moved)).consistent).toBe(false);
    const tot = Buffer.from(golden());
    tot.writeBigUInt64LE(1n, 512);
    expect(mergeCopies(a, parseStats(tot)).consistent).toBe(false);
    expect(mergeCopies(a, parseStats(golden())).consistent).toBe(true);
  });
  it('readStatsFile gives up after maxAttempts on a slot that stays busy, and says so', () => {
    const b = Buffer.from(golden());
    slotSeq(b, 0, 1n);
    const path = tmpFile();
    writeFileSync(path, b);
    const s = readStatsFile(path, { maxAttempts: 3 });
    expect(s.consistent).toBe(false);
    expect(s.processes[0]!.consistent).toBe(false);
  });
  it('readStatsFile rejects a file that is not a stats file', () => {
    const path = tmpFile();
    writeFileSync(path, 'hello');
    expect(() => readStatsFile(path)).toThrow(StatsFormatError);
  });
});

describe('stats file v1: what a container may put at the path (it owns the directory)', () => {
  /**
   * Reads in a child process: a reader that opens a FIFO blocks its thread until a writer comes, and a
   * blocked test worker would hang the run instead of failing the test. The child is killed at the timeout.
   */
  const readInChild = (path: string): { status: number | null; out: string } => {
    const reader = join(import.meta.dirname, 'stats-reader.ts');
    const script = `import { readStatsFile } from ${JSON.stringify(reader)};
try { readStatsFile(${JSON.stringify(path)}); console.log('read'); } catch (e) { console.log(e.name + ': ' + e.message); }`;
    const r = spawnSync(NODE_BIN, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
    return { status: r.status, out: `${r.stdout}${r.stderr}`.trim() };
  };

  it('a FIFO is refused at once, not waited on (the agent would hang at start-up and at every restart)', () => {
    const path = tmpFile();
    execFileSync('mkfifo', [path]);
    expect(readInChild(path)).toEqual({ status: 0, out: 'StatsFormatError: not read: it is a FIFO; a stats file is a regular file' });
  });

  it("a symbolic link is not followed, whether to a host file or to another container's stats file", () => {
    const other = tmpFile();
    writeFileSync(other, golden());
    for (const target of [other, '/etc/passwd']) {
      const link = tmpFile();
      symlinkSync(target, link);
      expect(() => readStatsFile(link)).toThrow('not read: it is a symbolic link; a stats file is a regular file');
    }
  });

  it('a directory and a file larger than a stats file are refused; an empty file means no process has started', () => {
    const dir = tmpFile();
    mkdirSync(dir);
    expect(() => readStatsFile(dir)).toThrow(/it is a directory/);
    const big = tmpFile();
    writeFileSync(big, Buffer.concat([golden(), Buffer.alloc(1)]));
    expect(() => readStatsFile(big)).toThrow(`not read: ${STATS_V1.fileSize + 1} bytes; a stats file v1 is at most ${STATS_V1.fileSize}`);
    const empty = tmpFile();
    writeFileSync(empty, '');
    expect(() => readStatsFile(empty)).toThrow(StatsEmptyError);
  });
});

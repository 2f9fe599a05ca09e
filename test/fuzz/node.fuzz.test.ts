/**
 * Fuzzing what the node agent reads from others: the stats file a container writes, sysfs attributes, the
 * driver's and the kernel's /proc files, and the EMUV_* values (flags' environment twins and the contract's
 * sizes). Properties: nothing throws but the parser's own error type; what is accepted is within bounds.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/errors.ts';
import { MAX_NODE_SIZE_BYTES, parseNodeConfig } from '../../common/contracts/emuv-node.ts';
import { formatSize, MAX_SIZE_BYTES, parseSize } from '../../common/contracts/interposer.ts';
import { envName, parsePluginConfig } from '../../plugin/config.ts';
import { scanPci } from '../../plugin/discovery/pci-scan.ts';
import { MAX_HOST_MEMORY_BYTES, parseMemTotal, parseNvidiaInformation } from '../../plugin/discovery/procfs.ts';
import { mergeCopies, parseStats, readStatsFile, STATS_V1, StatsFormatError } from '../../plugin/stats/stats-reader.ts';
import { parseInnermostPid, parseProcStatStartTime } from '../../plugin/usage/liveness.ts';
import { usageFromSnapshot } from '../../plugin/usage/collector.ts';
import { REPO_ROOT, tempDir } from '../../localcluster/repo.ts';
import { corpus, fuzz } from './fuzz.ts';
import { readFileSync } from 'node:fs';

const tmp = tempDir('emuv-fuzz-');
afterAll(() => tmp.cleanup());
const GOLDEN = readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'stats', 'golden-v1.bin'));

/** A stats file: the golden one with bytes overwritten (mostly in the header and the first slots), or noise. */
const statsBytes = fc.oneof(
  fc
    .tuple(
      fc.array(
        fc.record({
          offset: fc.oneof(
            fc.integer({ min: 0, max: 1023 }),
            fc.integer({ min: 4096, max: 4096 + 3 * 256 }),
            fc.integer({ min: 0, max: 65535 }),
          ),
          value: fc.integer({ min: 0, max: 255 }),
        }),
        { maxLength: 24 },
      ),
      fc.oneof(fc.constant(STATS_V1.fileSize), fc.integer({ min: 0, max: STATS_V1.fileSize })),
    )
    .map(([writes, length]) => {
      const b = Buffer.from(GOLDEN);
      for (const w of writes) b[w.offset] = w.value;
      return b.subarray(0, length);
    }),
  fc.uint8Array({ maxLength: 5000 }).map((a) => Buffer.from(a)),
);

function checkSnapshot(b: Buffer): void {
  try {
    const s = parseStats(b);
    expect(s.devices.length).toBeGreaterThanOrEqual(1);
    expect(s.devices.length).toBeLessThanOrEqual(STATS_V1.maxDevs);
    expect(s.processes.length).toBeLessThanOrEqual(STATS_V1.maxSlots);
    expect(Buffer.byteLength(s.gpu)).toBeLessThanOrEqual(72 * 3); // 72 bytes, each at most one replacement character
    // Everything built on it holds: merging with itself, and the per-container figures.
    expect(mergeCopies(s, s).processes).toHaveLength(s.processes.length);
    const u = usageFromSnapshot(
      'a',
      null,
      s,
      s.processes.map(() => 'gone'),
    );
    expect(u.exitedProcesses).toBe(s.processes.length);
  } catch (err) {
    expect(err).toBeInstanceOf(StatsFormatError);
  }
}

describe('fuzz: the stats file', () => {
  it('parseStats returns a bounded snapshot or a StatsFormatError', () => {
    fuzz(fc.property(statsBytes, checkSnapshot), 1500);
  });

  it('readStatsFile on what a container may write there: the same', () => {
    let n = 0;
    fuzz(
      fc.property(statsBytes, (b) => {
        const path = join(tmp.path, `stats-${n++ % 8}.bin`);
        writeFileSync(path, b);
        try {
          readStatsFile(path, { maxAttempts: 2 });
        } catch (err) {
          expect(err).toBeInstanceOf(StatsFormatError);
        }
      }),
      300,
    );
  });

  it.each(corpus<string>('stats').map((c) => [c.was, c.input]))('corpus: %s', (_was, hex) => checkSnapshot(Buffer.from(hex, 'hex')));
});

/** Text a sysfs attribute or a /proc file might hold: plausible values, near misses, noise. */
const attribute = fc.oneof(
  fc.constantFrom('0x10de\n', '0x030000\n', '0x030200\n', '0x2882\n', '-1\n', '0\n', '16.0 GT/s PCIe\n', 'Unknown\n', '16\n', ''),
  fc.stringMatching(/^0x[0-9a-fA-F]{0,12}\n?$/),
  fc.stringMatching(/^-?[0-9]{0,8}\n?$/),
  fc.stringMatching(/^[0-9]{1,4}(\.[0-9]{1,3})? GT\/s( PCIe)?\n?$/),
  fc.string({ maxLength: 40 }),
);

/** Writes a sysfs tree with these device directories, each holding these attributes; scans it; checks the result. */
function scanTree(root: string, names: readonly string[], attrs: Record<string, string>): void {
  for (const name of names) {
    const dir = join(root, 'bus', 'pci', 'devices', name);
    mkdirSync(dir, { recursive: true });
    for (const [k, v] of Object.entries(attrs)) writeFileSync(join(dir, k), v);
  }
  const r = scanPci(root);
  rmSync(root, { recursive: true, force: true });
  expect(new Set(r.gpus.map((g) => g.address)).size).toBe(r.gpus.length);
  for (const g of r.gpus) {
    expect(g.numaNode).toBeGreaterThanOrEqual(-1);
    expect(g.vendorId).toBe(0x10de);
    if (g.link.width !== null) expect(g.link.width).toBeGreaterThan(0);
    if (g.link.bandwidthBytesPerSec !== null) expect(Number.isSafeInteger(g.link.bandwidthBytesPerSec)).toBe(true);
  }
  for (const p of r.problems) expect(p.message.length).toBeLessThan(300);
}

describe('fuzz: sysfs', () => {
  it.each(corpus<{ names: string[]; attributes: Record<string, string> }>('sysfs').map((c, i) => [c.was, i, c.input]))(
    'corpus: %s',
    (_was, i, input) => scanTree(join(tmp.path, `sys-corpus-${i}`), input.names, input.attributes),
  );

  it('scanPci: never throws; one GPU per address; every value in range; problems are short', () => {
    let n = 0;
    fuzz(
      fc.property(
        fc.record({
          vendor: attribute,
          class: attribute,
          device: attribute,
          numa_node: attribute,
          current_link_speed: attribute,
          current_link_width: attribute,
        }),
        fc.subarray(['0000:01:00.0', '0000:0a:00.0', '0000:0A:00.0', '0000:01:00.9', 'not-pci'], { minLength: 1 }),
        (attrs, names) => {
          // Half the time a real GPU's identity, so that the numeric attributes behind it are reached.
          const base = n % 2 === 0 ? { vendor: '0x10de\n', class: '0x030000\n' } : {};
          scanTree(join(tmp.path, `sys-${n++}`), names, { ...attrs, ...base });
        },
      ),
      150,
    );
  });
});

const meminfo = fc.oneof(
  fc
    .array(
      fc.oneof(
        fc.stringMatching(/^MemTotal:[ \t]{1,8}[0-9]{1,22} kB$/),
        fc.stringMatching(/^MemFree: +[0-9]{1,10} kB$/),
        fc.stringMatching(/^MemTotal: ?.{0,20}$/),
      ),
      { maxLength: 4 },
    )
    .map((lines) => lines.join('\n')),
  fc.string({ maxLength: 200 }),
);

describe('fuzz: /proc', () => {
  const checkMem = (text: string) => {
    const r = parseMemTotal(text);
    if (r.bytes === null) expect(r.reason.length).toBeGreaterThan(0);
    else {
      expect(Number.isSafeInteger(r.bytes)).toBe(true);
      expect(r.bytes).toBeGreaterThan(0);
      expect(r.bytes).toBeLessThanOrEqual(MAX_HOST_MEMORY_BYTES);
      expect(r.bytes % 1024).toBe(0);
    }
  };

  it('meminfo: MemTotal is a whole, positive, exact number of bytes up to 4 PiB, or a reason', () => {
    fuzz(fc.property(meminfo, checkMem), 3000);
  });

  it.each(corpus<string>('meminfo').map((c) => [c.was, c.input]))('meminfo corpus: %s', (_was, text) => {
    checkMem(text);
    expect(parseMemTotal(text).bytes).toBeNull();
  });

  it("the driver's information file: fields are valid or null with a problem, never an exception", () => {
    const information = fc.oneof(
      fc
        .tuple(
          fc.string({ maxLength: 100 }),
          fc.oneof(
            fc.uuid().map((u) => `GPU-${u}`),
            fc.string({ maxLength: 50 }),
          ),
          fc.oneof(fc.integer({ min: -5, max: 300 }).map(String), fc.string({ maxLength: 5 })),
        )
        .map(([model, uuid, minor]) => `Model: \t ${model}\nGPU UUID: \t ${uuid}\nDevice Minor: \t ${minor}\n`),
      fc.string({ maxLength: 300 }),
    );
    fuzz(
      fc.property(information, (text) => {
        const problems: { subject: string; message: string }[] = [];
        const info = parseNvidiaInformation(text, 'f', problems);
        if (info.minor !== null) expect(info.minor >= 0 && info.minor < 256).toBe(true);
        if (info.uuid !== null) expect(info.uuid).toMatch(/^GPU-[0-9a-f-]{36}$/i);
        if (info.name !== null) expect(info.name.length).toBeLessThanOrEqual(96);
        for (const p of problems) expect(p.message.length).toBeLessThan(200);
      }),
      2000,
    );
  });

  it('/proc/<pid>/stat and status (process liveness): a number or null, never an exception', () => {
    const stat = fc.oneof(
      fc
        .tuple(fc.string({ maxLength: 20 }), fc.array(fc.oneof(fc.nat().map(String), fc.string({ maxLength: 4 })), { maxLength: 30 }))
        .map(([comm, fields]) => `1 (${comm}) ${fields.join(' ')}`),
      fc.string({ maxLength: 200 }),
    );
    const status = fc.oneof(
      fc.array(fc.nat(), { maxLength: 5 }).map((pids) => `Name: x\nNSpid:\t${pids.join('\t')}\n`),
      fc.string({ maxLength: 200 }),
    );
    fuzz(
      fc.property(stat, status, (a, b) => {
        const st = parseProcStatStartTime(a);
        if (st !== null) expect(st >= 0n).toBe(true);
        const pid = parseInnermostPid(b);
        if (pid !== null) expect(Number.isSafeInteger(pid)).toBe(true);
      }),
      3000,
    );
  });
});

describe('fuzz: EMUV_* values', () => {
  const sizeText = fc.oneof(
    fc.tuple(fc.stringMatching(/^[0-9]{1,22}$/), fc.constantFrom('', 'Ki', 'Mi', 'Gi', 'Ti', 'G', 'ki', 'i')).map(([d, s]) => d + s),
    fc.string({ maxLength: 30 }),
  );

  it('parseSize: bytes from 0 to 2^63-1 that print back the same, or an error with the reason', () => {
    fuzz(
      fc.property(sizeText, (t) => {
        let v: bigint;
        try {
          v = parseSize(t);
        } catch (err) {
          expect((err as Error).message).toContain('invalid size');
          return;
        }
        expect(v >= 0n && v <= MAX_SIZE_BYTES).toBe(true);
        expect(parseSize(formatSize(v))).toBe(v);
      }),
      3000,
    );
  });

  it("parseNodeConfig (an EmuvNode's spec): a config within the agent's bounds, or an Error naming the field", () => {
    fuzz(
      fc.property(
        fc.record(
          {
            hostSpillBudget: fc.oneof(sizeText, fc.constantFrom('Auto', '50%', '91%')),
            vramReservePerGpu: fc.oneof(sizeText, fc.jsonValue({ maxDepth: 0 })),
            slotsPerGpu: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.jsonValue({ maxDepth: 0 })),
            vramMode: fc.constantFrom('Fill', 'Fixed', 'fill'),
            spillBackend: fc.constantFrom('Auto', 'Pinned', 'Managed', 'x'),
          },
          { requiredKeys: [] },
        ),
        (spec) => {
          try {
            const c = parseNodeConfig(spec);
            expect(c.vramReserveBytes).toBeLessThanOrEqual(MAX_NODE_SIZE_BYTES);
            if (c.hostSpill.kind === 'bytes') expect(c.hostSpill.bytes).toBeLessThanOrEqual(MAX_NODE_SIZE_BYTES);
          } catch (err) {
            expect(err).toBeInstanceOf(Error);
            expect((err as Error).message).toMatch(/^(spec|hostSpillBudget|vramReservePerGpu|slotsPerGpu|vramMode|spillBackend)/);
          }
        },
      ),
      2000,
    );
  });

  it("the agent's EMUV_* environment: a configuration, or a ConfigError naming the flag", () => {
    const flags = [
      'slots-per-gpu',
      'vram-reserve',
      'host-spill',
      'vram-mode',
      'gpu-memory',
      'metrics-addr',
      'node-status',
      'owner-daemonset',
      'log-level',
    ];
    const value = fc.oneof(
      sizeText,
      fc.constantFrom('0', '129', '100%', '101%', 'auto', 'on', 'off', ':9402', '[::1]:99999', '0000:01:00.0=8Gi', 'a/b', 'debug'),
      fc.string({ maxLength: 40 }),
    );
    fuzz(
      fc.property(fc.dictionary(fc.constantFrom(...flags), value, { maxKeys: 4 }), (vals) => {
        const env: Record<string, string> = { NODE_NAME: 'n' };
        for (const [flag, v] of Object.entries(vals)) env[envName(flag)] = v;
        try {
          const cfg = parsePluginConfig([], env);
          expect(cfg.capacity.slotsPerGpu).toBeGreaterThanOrEqual(1);
          expect(Number.isSafeInteger(cfg.capacity.reserveBytes)).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
          expect((err as Error).message).toMatch(/^(--[a-z-]+|EMUV_[A-Z_]+)/);
        }
      }),
      2000,
    );
  });
});

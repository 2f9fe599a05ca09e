import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONTRACT_VERSION, ENV, MAX_SIZE_BYTES, parseSize, SPILL_BACKENDS } from '../../common/contracts/interposer.ts';
import { STATS_V1 } from '../../plugin/stats/stats-reader.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const HEADER = readFileSync(join(ROOT, 'native', 'include', 'emuv_contract.h'), 'utf8');

function defines(): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of HEADER.split('\n')) {
    const d = /^#define\s+(EMUV_\w+)\s+(.+?)\s*(\/\*.*)?$/.exec(line);
    if (d) m.set(d[1]!, d[2]!);
  }
  return m;
}

describe('interposer environment contract: native/include/emuv_contract.h vs common/contracts/interposer.ts', () => {
  const defs = defines();
  it('names the same EMUV_* variables', () => {
    const cNames = [...defs].filter(([k]) => k.startsWith('EMUV_ENV_')).map(([, v]) => JSON.parse(v) as string);
    expect(new Set(cNames)).toEqual(new Set(Object.values(ENV)));
    expect(cNames).toHaveLength(Object.values(ENV).length);
    for (const [k, v] of defs) if (k.startsWith('EMUV_ENV_')) expect(k).toBe(`EMUV_ENV_${(JSON.parse(v) as string).slice(5)}`);
  });
  it('accepts the same EMUV_SPILL_BACKEND values, in the same order (the C side: EMUV_SPILL_BACKENDS)', () => {
    expect(ENV.spillBackend).toBe('EMUV_SPILL_BACKEND');
    // native/tests/test_unit.c checks that the C parser accepts exactly these, in this order.
    expect((JSON.parse(defs.get('EMUV_SPILL_BACKENDS')!) as string).split('|')).toEqual([...SPILL_BACKENDS]);
  });
  it('speaks the same contract version and size limit', () => {
    expect(Number(defs.get('EMUV_CONTRACT_VERSION'))).toBe(CONTRACT_VERSION);
    expect(BigInt(defs.get('EMUV_MAX_SIZE_BYTES')!.replace(/ULL$/, ''))).toBe(MAX_SIZE_BYTES);
  });
  it('pins the same stats file v1 geometry as the reader', () => {
    expect(Number(defs.get('EMUV_STATS_MAGIC')!.replace(/u$/, ''))).toBe(STATS_V1.magic);
    expect(Number(defs.get('EMUV_STATS_VER_MAJOR'))).toBe(STATS_V1.verMajor);
    expect(Number(defs.get('EMUV_STATS_HDR_SIZE'))).toBe(STATS_V1.hdrSize);
    expect(Number(defs.get('EMUV_STATS_SLOT_SIZE'))).toBe(STATS_V1.slotSize);
    expect(Number(defs.get('EMUV_STATS_MAX_SLOTS'))).toBe(STATS_V1.maxSlots);
    expect(Number(defs.get('EMUV_STATS_MAX_DEVS'))).toBe(STATS_V1.maxDevs);
    expect(STATS_V1.hdrSize + STATS_V1.maxSlots * STATS_V1.slotSize).toBe(STATS_V1.fileSize);
    expect(Number(defs.get('EMUV_INIT_READY'))).toBe(STATS_V1.initReady);
    expect(Number(defs.get('EMUV_SLOT_LIVE'))).toBe(STATS_V1.slotLive);
    expect(BigInt(defs.get('EMUV_SEQ_BUSY_MASK')!.replace(/ull$/, ''))).toBe(STATS_V1.seqBusyMask);
  });

  const SIZES = [
    '0',
    '1',
    '4096',
    '1Ki',
    '7680Mi',
    '28Gi',
    '2Ti',
    '9223372036854775807',
    '8388607Ti',
    '',
    '7.5Gi',
    '1G',
    '1gi',
    '01',
    '-1',
    '+1',
    ' 1',
    '1 ',
    '1KiB',
    'Ki',
    'Mi',
    '9223372036854775808',
    '8388608Ti',
    '99999999999999999999999',
    '1Pi',
    '0x10',
    '1e9',
    '١',
    '00',
    '0Ki',
    '1Mi\t',
  ];
  it('parseSize and the C parser agree on valid and invalid sizes', () => {
    execFileSync('make', ['-s', '-C', join(ROOT, 'native'), 'parse-size-tool'], { stdio: 'pipe' });
    const out = execFileSync(join(ROOT, 'native', 'build', 'tests', 'emuv-parse-size'), {
      input: SIZES.join('\n') + '\n',
      encoding: 'utf8',
    }).split('\n');
    SIZES.forEach((s, i) => {
      let ts: string;
      try {
        ts = `ok ${parseSize(s)}`;
      } catch {
        ts = 'invalid';
      }
      expect({ size: s, c: out[i] }).toEqual({ size: s, c: ts });
    });
    expect(out.filter((l) => l.startsWith('ok'))).toHaveLength(10);
  });
});

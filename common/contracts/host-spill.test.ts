import { describe, expect, it } from 'vitest';
import { MAX_NODE_SIZE_BYTES } from './emuv-node.ts';
import {
  HOST_SPILL_EXPECTED,
  HOST_SPILL_PATTERN,
  HOST_SPILL_SHAPE_PATTERN,
  MAX_SPILL_BYTES,
  MAX_SPILL_PERCENT,
  parseHostSpill,
} from './host-spill.ts';

const GiB = 1024 ** 3;
const accepts = (text: string) => {
  try {
    parseHostSpill(text);
    return true;
  } catch {
    return false;
  }
};

describe('parseHostSpill: the one grammar of --host-spill and hostSpillBudget', () => {
  it('auto in both spellings, sizes and percents', () => {
    expect(parseHostSpill('auto')).toEqual({ kind: 'auto' });
    expect(parseHostSpill('Auto')).toEqual({ kind: 'auto' });
    expect(parseHostSpill('64Gi')).toEqual({ kind: 'bytes', bytes: 64 * GiB });
    expect(parseHostSpill('0')).toEqual({ kind: 'bytes', bytes: 0 });
    expect(parseHostSpill('0%')).toEqual({ kind: 'percent', percent: 0 });
    expect(parseHostSpill('40%')).toEqual({ kind: 'percent', percent: 40 });
    expect(parseHostSpill('90%')).toEqual({ kind: 'percent', percent: 90 });
    expect(parseHostSpill('8191Ti')).toEqual({ kind: 'bytes', bytes: 8191 * 1024 ** 4 });
  });

  it.each([
    ['91%', `a percent may be at most ${MAX_SPILL_PERCENT}% of node memory: the node needs RAM for its own pods`],
    ['100%', 'a percent may be at most 90%'],
    ['AUTO', HOST_SPILL_EXPECTED],
    ['aUto', HOST_SPILL_EXPECTED],
    ['040%', HOST_SPILL_EXPECTED],
    ['1000%', HOST_SPILL_EXPECTED],
    ['-1%', HOST_SPILL_EXPECTED],
    ['1.5Gi', HOST_SPILL_EXPECTED],
    ['64G', HOST_SPILL_EXPECTED],
    [' 64Gi', HOST_SPILL_EXPECTED],
    ['', HOST_SPILL_EXPECTED],
    ['8192Ti', 'larger than 9007199254740991 bytes (2^53-1)'],
    ['99999999999999999999999Ti', 'larger than 9007199254740991 bytes (2^53-1)'],
  ])('%j is refused: %s', (text, message) => {
    expect(() => parseHostSpill(text)).toThrow(message);
  });

  it('HOST_SPILL_PATTERN (schemas without CEL) accepts exactly what parseHostSpill accepts', () => {
    const re = new RegExp(HOST_SPILL_PATTERN);
    const shape = new RegExp(HOST_SPILL_SHAPE_PATTERN);
    const samples = [
      ...Array.from({ length: 1001 }, (_, i) => `${i}%`),
      ...['auto', 'Auto', 'AUTO', 'autO', '00%', '05%', '%', '1e3%', '64Gi', '64gi', '0', '01', '8191Ti', '1Ki', '1 Ki'],
    ];
    for (const s of samples) {
      // The bytes bound is the CRD's size-max rule, the agent's parse, and beyond any pattern: not sampled here.
      expect(re.test(s), s).toBe(accepts(s));
      // The shape is wider (the percent bound is a rule of its own) but never narrower.
      if (accepts(s)) expect(shape.test(s), s).toBe(true);
    }
  });

  it('its size bound is the node configuration bound', () => {
    expect(MAX_SPILL_BYTES).toBe(MAX_NODE_SIZE_BYTES);
  });
});

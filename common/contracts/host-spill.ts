/**
 * The host spill budget, one grammar for every place that takes it: the agent's `--host-spill`
 * (`EMUV_AGENT_HOST_SPILL`, the chart's `agent.hostSpill`) and `hostSpillBudget` of EmuvPolicy and EmuvNode
 * (the CRDs' CEL rules, the operator's validator, the chart's `defaultPolicy.spec.hostSpillBudget`, and the
 * agent applying an EmuvNode). Before, the flag took `auto` and up to 100 % while the CRD took `Auto` and up
 * to 90 %: a value could be good in one place and refused in the other.
 *
 *   auto | Auto              min(50 % of node memory, node memory - 8 GiB)
 *   <size>                   bytes or an integer with Ki, Mi, Gi or Ti, at most 2^53-1 bytes
 *   <n>%                     n from 0 to 90: a share of node memory
 *
 * Both spellings of the keyword are taken everywhere because flags are lowercase (`fill`, `off`) and CRD
 * enums capitalised (`Fill`, `Auto`); other cases are refused, as every other word is. 90 % is the bound
 * because the node needs RAM for its own pods; a size is not bounded by it (the agent caps it at MemTotal).
 */
import { parseSize } from './interposer.ts';

export type HostSpill = { kind: 'auto' } | { kind: 'bytes'; bytes: number } | { kind: 'percent'; percent: number };

export const HOST_SPILL_AUTO = ['auto', 'Auto'] as const;
export const MAX_SPILL_PERCENT = 90;
/** Largest size: 2^53-1, where the agent's arithmetic stays exact (the same bound as MAX_NODE_SIZE_BYTES). */
export const MAX_SPILL_BYTES = Number.MAX_SAFE_INTEGER;

/**
 * The grammar's shape, with a percent of up to three digits: the bound is a rule of its own where there is
 * CEL (the CRDs), so that 95% is told why, and CEL's int() of three digits cannot overflow.
 */
export const HOST_SPILL_SHAPE_PATTERN = '^([Aa]uto|(0|[1-9][0-9]*)(Ki|Mi|Gi|Ti)?|(0|[1-9][0-9]{0,2})%)$';
/**
 * The whole grammar, the percent bound included, for schemas without CEL (the chart's values.schema.json).
 * Written out for MAX_SPILL_PERCENT = 90; host-spill.test.ts checks every percent against parseHostSpill.
 */
export const HOST_SPILL_PATTERN = '^([Aa]uto|(0|[1-9][0-9]*)(Ki|Mi|Gi|Ti)?|([0-9]|[1-8][0-9]|90)%)$';

/** What is accepted, for messages. */
export const HOST_SPILL_EXPECTED = `expected auto, a size (e.g. 64Gi) or a percent of node memory from 0% to ${MAX_SPILL_PERCENT}% (e.g. 40%)`;
/** Why a larger percent is refused (the CRD's message says the same). */
export const SPILL_PERCENT_REASON = `may be at most ${MAX_SPILL_PERCENT}% of node memory: the node needs RAM for its own pods`;

const SHAPE_RE = new RegExp(HOST_SPILL_SHAPE_PATTERN);

/**
 * Parses a host spill budget. Throws an Error whose message says what is wrong and what is accepted,
 * without naming the setting (the caller does: `--host-spill 95%: …`, `hostSpillBudget: …`).
 */
export function parseHostSpill(text: string): HostSpill {
  if (!SHAPE_RE.test(text)) throw new Error(HOST_SPILL_EXPECTED);
  if ((HOST_SPILL_AUTO as readonly string[]).includes(text)) return { kind: 'auto' };
  if (text.endsWith('%')) {
    const percent = Number(text.slice(0, -1));
    if (percent > MAX_SPILL_PERCENT) throw new Error(`a percent ${SPILL_PERCENT_REASON}`);
    return { kind: 'percent', percent };
  }
  // The shape already holds: parseSize can refuse only past 2^63-1, which is past our bound too.
  let bytes: bigint | null;
  try {
    bytes = parseSize(text);
  } catch {
    bytes = null;
  }
  if (bytes === null || bytes > BigInt(MAX_SPILL_BYTES)) throw new Error(`larger than ${MAX_SPILL_BYTES} bytes (2^53-1)`);
  return { kind: 'bytes', bytes: Number(bytes) };
}

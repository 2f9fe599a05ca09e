import { describe, expect, it } from 'vitest';
import { parseDiscoverConfig } from './discover.ts';

describe('emuv discover configuration', () => {
  it('the node flags of emuv plugin, from the same EMUV_AGENT_* variables, and --json', () => {
    const c = parseDiscoverConfig(['--json'], { EMUV_AGENT_SYS_ROOT: '/host/sys', EMUV_AGENT_HOST_SPILL: '40%' });
    expect(c).toMatchObject({ sysRoot: '/host/sys', json: true, capacity: { hostBudget: { kind: 'percent', percent: 40 } } });
    expect(parseDiscoverConfig([], {}).json).toBe(false);
    expect(parseDiscoverConfig([], { EMUV_AGENT_JSON: 'on' }).json).toBe(true);
  });

  it('the agent’s own flags are not discover’s; a bad variable is named', () => {
    expect(() => parseDiscoverConfig(['--state-dir=/x'], {})).toThrow('--state-dir: unknown flag of emuv discover');
    expect(() => parseDiscoverConfig([], { EMUV_AGENT_JSON: 'yes' })).toThrow('EMUV_AGENT_JSON=yes: expected on or off (or true, false)');
  });
});

import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/errors.ts';
import { parseRemoveAgentsConfig } from '../config.ts';
import { removeAgents, type RemoveAgentsApi } from './remove-agents.ts';
import type { DaemonSetView } from './uninstall.ts';

const REF = { namespace: 'emuv-system', name: 'emuv-agent' };

/** A DaemonSet that the garbage collector removes after `getsUntilGone` reads (its pods exiting). */
function fakeApi(opts: { exists: boolean; getsUntilGone: number; failFirstGet?: boolean }) {
  const calls: string[] = [];
  let gets = 0;
  let deleted = false;
  const api: RemoveAgentsApi = {
    deleteDaemonSetForeground: async (ref) => {
      calls.push(`delete ${ref.namespace}/${ref.name}`);
      deleted = opts.exists;
      return opts.exists;
    },
    getDaemonSet: async (): Promise<DaemonSetView | null> => {
      gets++;
      calls.push('get');
      if (opts.failFirstGet && gets === 1) throw new Error('503');
      if (!deleted) return null;
      return gets >= opts.getsUntilGone ? null : { metadata: { deletionTimestamp: '2026-11-27T00:00:00Z' } };
    },
  };
  return { api, calls };
}

function clock() {
  let t = 0;
  return { now: () => t, sleep: async (ms: number) => void (t += ms) };
}

describe('removeAgents', () => {
  it('deletes in the foreground, then waits while the DaemonSet is being deleted until it is gone', async () => {
    const { api, calls } = fakeApi({ exists: true, getsUntilGone: 4 });
    const r = await removeAgents(api, REF, { timeoutMs: 60_000, pollMs: 1000, ...clock() });
    expect(r).toEqual({ outcome: 'gone', waitedMs: 3000 });
    expect(calls).toEqual(['delete emuv-system/emuv-agent', 'get', 'get', 'get', 'get']);
  });

  it('has nothing to do when there is no DaemonSet', async () => {
    const { api, calls } = fakeApi({ exists: false, getsUntilGone: 1 });
    expect(await removeAgents(api, REF, { timeoutMs: 60_000, ...clock() })).toEqual({ outcome: 'absent', waitedMs: 0 });
    expect(calls).toEqual(['delete emuv-system/emuv-agent']);
  });

  it('gives up at the deadline while agents are still running', async () => {
    const { api } = fakeApi({ exists: true, getsUntilGone: 1000 });
    const r = await removeAgents(api, REF, { timeoutMs: 5000, pollMs: 1000, ...clock() });
    expect(r.outcome).toBe('timeout');
    expect(r.waitedMs).toBe(5000);
  });

  it('takes a failed read for no answer, not for "gone"', async () => {
    const { api, calls } = fakeApi({ exists: true, getsUntilGone: 3, failFirstGet: true });
    const r = await removeAgents(api, REF, { timeoutMs: 60_000, pollMs: 500, ...clock() });
    expect(r).toEqual({ outcome: 'gone', waitedMs: 1000 });
    expect(calls.filter((c) => c === 'get')).toHaveLength(3);
  });

  it('propagates a refused delete (e.g. RBAC) instead of reporting success', async () => {
    const api: RemoveAgentsApi = {
      deleteDaemonSetForeground: async () => {
        throw new Error('forbidden');
      },
      getDaemonSet: async () => null,
    };
    await expect(removeAgents(api, REF, { timeoutMs: 1000, ...clock() })).rejects.toThrow('forbidden');
  });
});

describe('emuv remove-agents flags', () => {
  it('reads the DaemonSet, kubeconfig and timeout from flags or EMUV_AGENT_* variables', () => {
    expect(parseRemoveAgentsConfig(['--owner-daemonset=emuv-system/emuv-agent', '--timeout=30'], {})).toEqual({
      daemonSet: REF,
      kubeconfig: null,
      timeoutMs: 30_000,
    });
    expect(
      parseRemoveAgentsConfig([], { EMUV_AGENT_OWNER_DAEMONSET: 'ns/ds', EMUV_AGENT_KUBECONFIG: '/k', EMUV_AGENT_TIMEOUT: '30' }),
    ).toEqual({
      daemonSet: { namespace: 'ns', name: 'ds' },
      kubeconfig: { path: '/k', from: 'EMUV_AGENT_KUBECONFIG' },
      timeoutMs: 30_000,
    });
    expect(parseRemoveAgentsConfig([], { EMUV_AGENT_OWNER_DAEMONSET: 'ns/ds', KUBECONFIG: '/kubectl' }).kubeconfig).toEqual({
      path: '/kubectl',
      from: 'KUBECONFIG',
    });
  });

  it('refuses a missing or malformed DaemonSet and a bad timeout, saying what is expected', () => {
    expect(() => parseRemoveAgentsConfig([], {})).toThrow(/--owner-daemonset is required/);
    expect(() => parseRemoveAgentsConfig(['--owner-daemonset=Bad/x'], {})).toThrow(ConfigError);
    expect(() => parseRemoveAgentsConfig(['--owner-daemonset=a/b', '--timeout=0'], {})).toThrow(/--timeout 0: expected whole seconds/);
    expect(() => parseRemoveAgentsConfig(['--owner-daemonset=a/b', '--timeout=5m'], {})).toThrow(/expected whole seconds/);
  });
});

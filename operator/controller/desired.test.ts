import { describe, expect, it } from 'vitest';
import { DEFAULT_NODE_CONFIG, desiredNodeSpec, desiredNodeSpecs, resolveNode } from './desired.ts';
import { computeInvalidPolicyStatus, computePolicyStatus, setCondition } from './status.ts';
import { node as kubeNode, policy } from '../../test/fakes/operator-objects.ts';
import type { NodeInfo } from './desired.ts';

const n = (name: string, labels: Record<string, string> = {}): NodeInfo => ({ name, labels });
const sel = (labels: Record<string, string>) => ({ nodeSelector: { matchLabels: labels } });

describe('resolveNode', () => {
  const all = policy('all', { priority: 0, slotsPerGpu: 2 });
  const a100 = policy('a100', { priority: 10, ...sel({ gpu: 'a100' }), slotsPerGpu: 8 });
  const a100b = policy('a100-b', { priority: 10, ...sel({ gpu: 'a100' }) });
  const l4 = policy('l4', { priority: 5, ...sel({ gpu: 'l4' }) });

  it.each([
    ['no policies', [], n('x'), { node: 'x', matched: [] }],
    ['one catch-all', [all], n('x'), { node: 'x', matched: ['all'], winner: 'all' }],
    ['higher priority wins, lower listed', [all, a100], n('x', { gpu: 'a100' }), { node: 'x', matched: ['a100', 'all'], winner: 'a100' }],
    ['selector miss', [a100, l4], n('x', { gpu: 't4' }), { node: 'x', matched: [] }],
    [
      'tie at the top is a conflict',
      [all, a100, a100b],
      n('x', { gpu: 'a100' }),
      { node: 'x', matched: ['a100', 'a100-b', 'all'], tie: ['a100', 'a100-b'] },
    ],
    [
      'tie below the top is not a conflict',
      [policy('p1'), policy('p2'), l4],
      n('x', { gpu: 'l4' }),
      { node: 'x', matched: ['l4', 'p1', 'p2'], winner: 'l4' },
    ],
  ])('%s', (_name, policies, node, want) => {
    expect(resolveNode(policies, node)).toEqual(want);
  });
});

describe('desiredNodeSpec', () => {
  const a = policy('a', { priority: 1, slotsPerGpu: 8, vramMode: 'Fixed', hostSpillBudget: '64Gi' });
  const b = policy('b', { priority: 1 });
  it('copies the winner config and names it', () => {
    expect(desiredNodeSpec([a], resolveNode([a], n('x')), undefined)).toEqual({
      hostSpillBudget: '64Gi',
      vramReservePerGpu: '512Mi',
      slotsPerGpu: 8,
      vramMode: 'Fixed',
      spillBackend: 'Auto',
      allocation: 'DevicePlugin',
      policy: 'a',
    });
  });
  it('carries the winner allocation into the EmuvNode spec', () => {
    const dra = policy('dra', { priority: 2, allocation: 'DRA' });
    expect(desiredNodeSpec([a, dra], resolveNode([a, dra], n('x')), undefined)).toMatchObject({ allocation: 'DRA', policy: 'dra' });
    expect(DEFAULT_NODE_CONFIG.allocation).toBe('DevicePlugin');
  });
  it('a tie keeps an older EmuvNode without allocation as it is (its agent keeps its flag)', () => {
    const { allocation: _drop, ...older } = { ...DEFAULT_NODE_CONFIG, policy: 'a' };
    const kept = desiredNodeSpec([a, b], resolveNode([a, b], n('x')), older);
    expect(kept).toEqual({ ...older, conflictingPolicies: ['a', 'b'] });
    expect('allocation' in kept).toBe(false);
  });
  it('a tie keeps the current allocation', () => {
    const current = { ...DEFAULT_NODE_CONFIG, allocation: 'DRA' as const, policy: 'a' };
    expect(desiredNodeSpec([a, b], resolveNode([a, b], n('x')), current).allocation).toBe('DRA');
  });
  it('defaults when no policy matches', () => {
    expect(desiredNodeSpec([], resolveNode([], n('x')), { ...DEFAULT_NODE_CONFIG, slotsPerGpu: 9, policy: 'gone' })).toEqual(
      DEFAULT_NODE_CONFIG,
    );
  });
  it('keeps the current config on a tie and names the conflict', () => {
    const current = { ...DEFAULT_NODE_CONFIG, slotsPerGpu: 3, policy: 'a' };
    expect(desiredNodeSpec([a, b], resolveNode([a, b], n('x')), current)).toEqual({ ...current, conflictingPolicies: ['a', 'b'] });
  });
  it('uses defaults on a tie for a new node', () => {
    expect(desiredNodeSpec([a, b], resolveNode([a, b], n('x')), undefined)).toEqual({
      ...DEFAULT_NODE_CONFIG,
      conflictingPolicies: ['a', 'b'],
    });
  });
  it('desiredNodeSpecs maps every node', () => {
    const out = desiredNodeSpecs([policy('z', { ...sel({ g: '1' }), slotsPerGpu: 1 })], [n('x', { g: '1' }), n('y')]);
    expect(out.get('x')?.slotsPerGpu).toBe(1);
    expect(out.get('y')).toEqual(DEFAULT_NODE_CONFIG);
  });
});

describe('computePolicyStatus', () => {
  const now = new Date('2026-11-27T12:00:00Z');
  const nodes = [n('n1', { gpu: 'a100' }), n('n2', { gpu: 'a100' }), n('n3', { gpu: 'l4' })];
  it('counts matched and applied, reports shadowing', () => {
    const low = policy('low', { priority: 0 });
    const high = policy('high', { priority: 5, ...sel({ gpu: 'a100' }) }, 3);
    const s = computePolicyStatus(low, [low, high], nodes, now);
    expect(s).toMatchObject({ observedGeneration: 1, matchedNodes: 3, appliedNodes: 1, conflictCount: 2 });
    expect(s.conflicts).toEqual([
      { node: 'n1', type: 'Shadowed', policies: ['high'] },
      { node: 'n2', type: 'Shadowed', policies: ['high'] },
    ]);
    expect(s.conditions).toEqual([
      expect.objectContaining({ type: 'Ready', status: 'True', reason: 'Applied', message: 'in effect on 1 of 3 matched node(s)' }),
    ]);
    const h = computePolicyStatus(high, [low, high], nodes, now);
    expect(h).toMatchObject({ observedGeneration: 3, matchedNodes: 2, appliedNodes: 2, conflictCount: 0, conflicts: [] });
  });
  it('a tie makes both policies not Ready with a readable message', () => {
    const a = policy('a', { priority: 2 });
    const b = policy('b', { priority: 2, ...sel({ gpu: 'l4' }) });
    const s = computePolicyStatus(a, [a, b], nodes, now);
    expect(s.conflicts).toEqual([{ node: 'n3', type: 'Tie', policies: ['b'] }]);
    expect(s.conditions?.[0]).toMatchObject({ status: 'False', reason: 'PriorityTie' });
    expect(s.conditions?.[0]?.message).toContain('n3 (with b)');
  });
  it('no matching node is Ready with reason NoMatchingNodes', () => {
    const p = policy('p', sel({ gpu: 'h100' }));
    expect(computePolicyStatus(p, [p], nodes, now).conditions?.[0]).toMatchObject({ status: 'True', reason: 'NoMatchingNodes' });
  });
  it('keeps lastTransitionTime while the condition status holds', () => {
    const p = policy('p');
    const first = computePolicyStatus(p, [p], nodes, now);
    const again = computePolicyStatus({ ...p, status: first }, [p], nodes, new Date('2026-11-27T13:00:00Z'));
    expect(again).toEqual(first);
  });
  it('lists at most 32 conflicts but counts all', () => {
    const many = Array.from({ length: 40 }, (_, i) => n(`n${i}`));
    const a = policy('a');
    const b = policy('b');
    const s = computePolicyStatus(a, [a, b], many, now);
    expect(s.conflictCount).toBe(40);
    expect(s.conflicts).toHaveLength(32);
  });
  it('invalid status carries the errors', () => {
    const s = computeInvalidPolicyStatus(undefined, 4, ['spec.slotsPerGpu: must be at least 1'], now);
    expect(s).toMatchObject({ observedGeneration: 4, matchedNodes: 0 });
    expect(s.conditions?.[0]).toMatchObject({ status: 'False', reason: 'Invalid', message: 'spec.slotsPerGpu: must be at least 1' });
  });
  it('setCondition replaces by type and changes time on a flip', () => {
    const c1 = { type: 'Ready', status: 'True' as const, reason: 'A', message: '', lastTransitionTime: 't1' };
    expect(setCondition([c1], { ...c1, status: 'False', lastTransitionTime: 't2' })).toEqual([
      { ...c1, status: 'False', lastTransitionTime: 't2' },
    ]);
  });
  it('builder node is a gpu node', () => {
    expect(kubeNode('x').metadata.labels['emuv.io/gpu.count']).toBe('1');
  });
});

import { describe, expect, it } from 'vitest';
import { HttpError } from '../../test/fakes/json-patch.ts';
import { FakeKube } from '../../test/fakes/operator-kube.ts';
import { FakeClock } from '../clock.ts';
import type { ClaimTemplateApi, ResourceClaimTemplate } from '../kube/api.ts';
import { ClaimTemplateError, ClaimTemplates, claimTemplateFor } from './claim-templates.ts';

const GIB = 1n << 30n;

function setup(opts: { ttlMs?: number; maxEntries?: number } = {}) {
  const api = new FakeKube();
  const clock = new FakeClock();
  const templates = new ClaimTemplates({ api, clock, ...opts });
  const creates = () => api.summary().filter((s) => s.startsWith('create resourceclaimtemplates/'));
  return { api, clock, templates, creates };
}

describe('claimTemplateFor', () => {
  it('is one device of emuv’s class with the size as its memory capacity request, labelled as the webhook’s', () => {
    expect(claimTemplateFor('ml', 28n * GIB)).toEqual({
      metadata: { name: 'emuv-vram-30064771072', namespace: 'ml', labels: { 'app.kubernetes.io/managed-by': 'emuv-webhook' } },
      spec: {
        spec: {
          devices: {
            requests: [
              {
                name: 'vram',
                exactly: {
                  deviceClassName: 'gpu.emuv.io',
                  allocationMode: 'ExactCount',
                  count: 1,
                  capacity: { requests: { memory: '30064771072' } },
                },
              },
            ],
          },
        },
      },
    });
  });
});

describe('ClaimTemplates', () => {
  it('creates a template once per namespace and size, then answers from its cache', async () => {
    const { api, templates, creates } = setup();
    await templates.ensure('ml', GIB);
    await templates.ensure('ml', GIB);
    await templates.ensure('ml', 2n * GIB);
    await templates.ensure('other', GIB);
    expect(creates()).toEqual([
      'create resourceclaimtemplates/ml/emuv-vram-1073741824',
      'create resourceclaimtemplates/ml/emuv-vram-2147483648',
      'create resourceclaimtemplates/other/emuv-vram-1073741824',
    ]);
    expect(api.claimTemplates.get('ml/emuv-vram-1073741824')).toEqual(claimTemplateFor('ml', GIB));
  });

  it('takes AlreadyExists (409) as success and remembers it', async () => {
    const { api, templates, creates } = setup();
    api.claimTemplates.set('ml/emuv-vram-1073741824', claimTemplateFor('ml', GIB));
    await expect(templates.ensure('ml', GIB)).resolves.toBeUndefined();
    await templates.ensure('ml', GIB);
    expect(creates()).toHaveLength(1);
  });

  it('concurrent admissions of one size share one create', async () => {
    const { templates, creates } = setup();
    await Promise.all([templates.ensure('ml', GIB), templates.ensure('ml', GIB), templates.ensure('ml', GIB)]);
    expect(creates()).toHaveLength(1);
  });

  it('forgets after ttlMs, so a template deleted by hand is made again', async () => {
    const { api, clock, templates, creates } = setup({ ttlMs: 60_000 });
    await templates.ensure('ml', GIB);
    api.claimTemplates.clear();
    clock.advance(59_000);
    await templates.ensure('ml', GIB);
    expect(creates()).toHaveLength(1);
    clock.advance(2_000);
    await templates.ensure('ml', GIB);
    expect(creates()).toHaveLength(2);
    expect(api.claimTemplates.has('ml/emuv-vram-1073741824')).toBe(true);
  });

  it('holds at most maxEntries, dropping the oldest', async () => {
    const { templates, creates } = setup({ maxEntries: 2 });
    for (const n of [1n, 2n, 3n]) await templates.ensure('ml', n * GIB);
    await templates.ensure('ml', 3n * GIB);
    expect(creates()).toHaveLength(3);
    await templates.ensure('ml', 1n * GIB);
    expect(creates()).toHaveLength(4);
  });

  it.each([
    [403, 'grant its service account create on resourceclaimtemplates'],
    [404, 'resource.k8s.io/v1 is not served here: DRA needs Kubernetes 1.34 or later'],
    [422, 'this is a bug in emuv'],
    [500, 'retry the pod'],
  ])('a failed create (HTTP %i) rejects with an actionable message, and is retried next time', async (code, hint) => {
    const { api, templates, creates } = setup();
    api.failNext.set('create:resourceclaimtemplates', new HttpError(code, 'the apiserver said no'));
    const err = await templates.ensure('ml', GIB).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClaimTemplateError);
    expect(
      (err as Error).message.startsWith(
        `could not create ResourceClaimTemplate ml/emuv-vram-1073741824, which the pod's emuv.io/vram-virtual claim is made from ` +
          `(HTTP ${code}: the apiserver said no): `,
      ),
    ).toBe(true);
    expect((err as Error).message).toContain(hint);
    await templates.ensure('ml', GIB);
    expect(creates()).toHaveLength(2);
  });

  it('quotes the apiserver’s Status message from a client-node ApiException body', async () => {
    const api: ClaimTemplateApi = {
      createResourceClaimTemplate: () =>
        Promise.reject(
          Object.assign(new Error('HTTP-Code: 403\nMessage: Unknown API Status Code!\nBody: ...'), {
            code: 403,
            body: JSON.stringify({
              kind: 'Status',
              message: 'resourceclaimtemplates.resource.k8s.io is forbidden: User "x" cannot create',
            }),
          }),
        ),
    };
    const templates = new ClaimTemplates({ api, clock: new FakeClock() });
    await expect(templates.ensure('ml', GIB)).rejects.toThrow(
      '(HTTP 403: resourceclaimtemplates.resource.k8s.io is forbidden: User "x" cannot create): the emuv operator may not create',
    );
  });

  it('gives up after timeoutMs with a clear message, well inside the webhook timeout', async () => {
    const clock = new FakeClock();
    const calls: ResourceClaimTemplate[] = [];
    const api: ClaimTemplateApi = {
      createResourceClaimTemplate: (t) => {
        calls.push(t);
        return new Promise<void>(() => {});
      },
    };
    const templates = new ClaimTemplates({ api, clock, timeoutMs: 2_000 });
    const p = templates.ensure('ml', GIB).catch((e: unknown) => e);
    clock.advance(1_999);
    let settled = false;
    void p.then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    clock.advance(1);
    const err = await p;
    expect(err).toBeInstanceOf(ClaimTemplateError);
    expect((err as Error).message).toBe(
      'could not create ResourceClaimTemplate ml/emuv-vram-1073741824 within 2000 ms (the apiserver did not answer in time); retry the pod',
    );
    expect(calls).toHaveLength(1);
  });
});

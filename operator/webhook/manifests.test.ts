import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { RESOURCE_VGPU, RESOURCE_VRAM_VIRTUAL } from '../../common/contracts/resources.ts';
import {
  AGENT_SERVICE_ACCOUNT,
  DEFAULT_NAMESPACE,
  USER_EXTRA_NODE_NAME,
  WEBHOOK_CONFIGURATION,
  WEBHOOK_NAME,
  WEBHOOK_PATH,
  WEBHOOK_SERVICE,
} from '../names.ts';
import { ANNOTATION_ADMITTED } from './mutate-pod.ts';

const docs = (file: string) =>
  parseAllDocuments(readFileSync(new URL(`../../deploy/webhook/${file}`, import.meta.url), 'utf8')).map((d) => d.toJS());

describe('deploy/webhook', () => {
  it('MutatingWebhookConfiguration follows the operator names and the safety rules', () => {
    const [mwc] = docs('mutatingwebhookconfiguration.yaml');
    expect(mwc.metadata.name).toBe(WEBHOOK_CONFIGURATION);
    const w = mwc.webhooks[0];
    expect(w.name).toBe(WEBHOOK_NAME);
    expect(w.clientConfig.service).toEqual({ name: WEBHOOK_SERVICE, namespace: DEFAULT_NAMESPACE, path: WEBHOOK_PATH, port: 443 });
    // NoneOnDryRun: on DRA the webhook creates ResourceClaimTemplates (claim-templates.ts), never on a dry run.
    expect(w).toMatchObject({ failurePolicy: 'Fail', sideEffects: 'NoneOnDryRun', admissionReviewVersions: ['v1'] });
    expect(w.timeoutSeconds).toBeLessThanOrEqual(5);
    expect(w.rules).toEqual([{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
    const cond = w.matchConditions[0].expression as string;
    expect(cond).toContain('object.spec.containers.exists');
    expect(cond).toContain('object.spec.initContainers.exists');
    expect(cond.split(`'${RESOURCE_VRAM_VIRTUAL}'`).length - 1).toBe(4);
    expect(w.namespaceSelector.matchExpressions[0].values).toContain(DEFAULT_NAMESPACE);
  });

  it('ValidatingAdmissionPolicies are bound and name the contract resources', () => {
    const all = docs('validatingadmissionpolicies.yaml');
    const policies = all.filter((d) => d.kind === 'ValidatingAdmissionPolicy');
    const bindings = all.filter((d) => d.kind === 'ValidatingAdmissionPolicyBinding');
    expect(policies.map((p) => p.metadata.name).sort()).toEqual(bindings.map((b) => b.spec.policyName).sort());
    for (const b of bindings) expect(b.spec.validationActions).toEqual(['Deny']);
    for (const p of policies) {
      expect(p.apiVersion).toBe('admissionregistration.k8s.io/v1');
      for (const v of p.spec.validations) expect(v.message ?? v.messageExpression).toBeTruthy();
    }
    const vgpu = JSON.stringify(policies[0].spec);
    expect(vgpu).toContain(RESOURCE_VGPU);
    expect(vgpu).toContain(ANNOTATION_ADMITTED);
    const agent = JSON.stringify(policies[1].spec);
    expect(agent).toContain(`system:serviceaccount:${DEFAULT_NAMESPACE}:${AGENT_SERVICE_ACCOUNT}`);
    expect(agent).toContain(USER_EXTRA_NODE_NAME);
    expect(policies[1].spec.matchConstraints.resourceRules.flatMap((r: { resources: string[] }) => r.resources)).toEqual([
      'nodes',
      'nodes/status',
      'emuvnodes',
      'emuvnodes/status',
    ]);
  });
});

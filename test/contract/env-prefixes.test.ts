/**
 * Three sets of environment variables share a pod or a node and must never meet: the interposer's
 * contract (`EMUV_*`, common/contracts/interposer.ts; written into GPU containers), the `emuv` commands'
 * (`EMUV_AGENT_*`, plugin/config/) and the operator's (`EMUV_OPERATOR_*`, operator/config.ts). Before they
 * had prefixes of their own, `EMUV_LOG_LEVEL` and `EMUV_VRAM_MODE` were both an agent setting and a
 * contract variable. The prefixes keep them apart; this test keeps the prefixes honest.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ENV } from '../../common/contracts/interposer.ts';
import { envName, envNames } from '../../common/flags.ts';
import { OPERATOR_COMMAND, OPERATOR_ENV_PREFIX } from '../../operator/config.ts';
import { AGENT_ENV_PREFIX, COMMANDS } from '../../plugin/config.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const CONTRACT = Object.values(ENV) as string[];
/** Variables a program reads that are not its own: kubectl's and the downward API's. */
const FALLBACKS = new Set(['KUBECONFIG', 'NODE_NAME', 'POD_NAMESPACE', 'POD_NAME']);

const programs = [
  { name: 'emuv', prefix: AGENT_ENV_PREFIX, vars: [...new Set(Object.values(COMMANDS).flatMap((c) => envNames(c)))] },
  { name: 'emuv-operator', prefix: OPERATOR_ENV_PREFIX, vars: envNames(OPERATOR_COMMAND) },
];

describe('environment variables: contract, agent, operator', () => {
  it('each program’s own variables carry its prefix; the rest are the known fallbacks', () => {
    for (const p of programs) {
      const own = p.vars.filter((v) => !FALLBACKS.has(v));
      expect(own.length, p.name).toBeGreaterThan(3);
      for (const v of own) expect(v, p.name).toMatch(new RegExp(`^${p.prefix}[A-Z0-9_]+$`));
    }
  });

  it('no agent or operator variable is a contract variable, and no contract variable can ever be one', () => {
    for (const p of programs) for (const v of p.vars) expect(CONTRACT, `${p.name}: ${v}`).not.toContain(v);
    // The guard for variables added later: nothing in the contract lives under a program's prefix.
    for (const c of CONTRACT) for (const p of programs) expect(c.startsWith(p.prefix), c).toBe(false);
    // Nor does a prefix contain another, so the two programs cannot read each other's variables.
    expect(AGENT_ENV_PREFIX.startsWith(OPERATOR_ENV_PREFIX) || OPERATOR_ENV_PREFIX.startsWith(AGENT_ENV_PREFIX)).toBe(false);
    expect(envName(AGENT_ENV_PREFIX, 'log-level')).not.toBe(ENV.logLevel);
    expect(envName(AGENT_ENV_PREFIX, 'vram-mode')).not.toBe(ENV.vramMode);
  });

  it('no variable is one Kubernetes injects for the chart’s Services (service links: EMUV_AGENT_SERVICE_HOST, EMUV_WEBHOOK_PORT…)', () => {
    // The Services emuv-agent, emuv-operator and emuv-webhook make every pod of their namespace get
    // <NAME>_SERVICE_HOST, <NAME>_SERVICE_PORT[_<port>], <NAME>_PORT[_<n>_<proto>[_PROTO|_PORT|_ADDR]].
    const deploy = parseAllDocuments(readFileSync(join(ROOT, 'deploy', 'emuv.yaml'), 'utf8')).map(
      (d) => d.toJS() as { kind?: string; metadata?: { name?: string } } | null,
    );
    const services = deploy.filter((o) => o?.kind === 'Service').map((o) => o!.metadata!.name!);
    expect(services).toEqual(expect.arrayContaining(['emuv-agent', 'emuv-operator', 'emuv-webhook']));
    for (const svc of services) {
      const link = new RegExp(`^${svc.toUpperCase().replace(/-/g, '_')}_(SERVICE_HOST|SERVICE_PORT(_.*)?|PORT(_.*)?)$`);
      for (const p of programs) for (const v of p.vars) expect(v, `${p.name}: ${v} vs Service ${svc}`).not.toMatch(link);
    }
  });
});

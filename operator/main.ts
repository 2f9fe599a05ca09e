/**
 * Composition root of the operator: the only place that reads process.env/argv, the file system for
 * provided certificates, and installs signal handlers. Composition only: informer restarts live in
 * controller/informers.ts, certificate checks in webhook/cert-upkeep.ts, flags in config.ts.
 *
 *   every replica: informers (EmuvPolicy, Namespace) -> webhook HTTPS server (+ certificate upkeep)
 *   the leader:    informers (EmuvPolicy, Node, EmuvNode) -> work queue -> Reconciler
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { CoreV1Api, CustomObjectsApi, makeInformer } from '@kubernetes/client-node';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { ConfigError, errorLine, StartupError } from '../common/errors.ts';
import { startHttpServer } from '../common/http.ts';
import { loadKubeConfig } from '../common/kube/config.ts';
import { createLogger, errFields } from '../common/log.ts';
import type { Logger } from '../common/log.ts';
import { GROUP, PLURAL_NODE, PLURAL_POLICY, VERSION } from './api/schema.ts';
import type { EmuvNode } from './api/types.ts';
import { systemClock } from './clock.ts';
import { parseOperatorConfig, usage } from './config.ts';
import type { OperatorConfig } from './config.ts';
import { Controller } from './controller/controller.ts';
import type { StartableInformer } from './controller/controller.ts';
import { ApiEventRecorder } from './controller/events.ts';
import { resilientInformer, type ResilientInformer } from './controller/informers.ts';
import { LeaderElector } from './controller/leader.ts';
import { WorkQueue } from './controller/queue.ts';
import { Reconciler } from './controller/reconcile.ts';
import type { KubeNode } from './controller/reconcile.ts';
import { KubeClient } from './kube/client.ts';
import { createOperatorMetrics } from './metrics.ts';
import type { OperatorMetrics } from './metrics.ts';
import { admitPods } from './webhook/admission.ts';
import { ClaimTemplates } from './webhook/claim-templates.ts';
import { startCertUpkeep } from './webhook/cert-upkeep.ts';
import { CertManager, loadProvidedCertificate } from './webhook/certs.ts';
import { mutatePod } from './webhook/mutate-pod.ts';
import { CachedPolicySource } from './webhook/policy-source.ts';
import type { NamespaceLike } from './webhook/policy-source.ts';
import { WebhookServer } from './webhook/server.ts';
import { X509Certificate } from 'node:crypto';

type CachedInformer<T> = ResilientInformer<T> & StartableInformer;

/** A client-node informer of `path`, restarted after watch errors (controller/informers.ts). */
function informer<T extends KubernetesObject>(kc: KubeConfig, path: string, list: () => Promise<{ items: T[] }>, log: Logger) {
  return resilientInformer(makeInformer<T>(kc, path, list as never), { what: path, log, timer: systemClock }) as CachedInformer<T>;
}

async function startWebhook(
  cfg: OperatorConfig,
  deps: { client: KubeClient; log: Logger; metrics: OperatorMetrics; source: CachedPolicySource; ready: () => boolean },
): Promise<() => Promise<void>> {
  const { client, log, metrics } = deps;
  const certs = new CertManager({
    api: client,
    clock: systemClock,
    config: {
      namespace: cfg.namespace,
      secretName: cfg.webhookSecret,
      serviceName: cfg.webhookService,
      webhookConfigName: cfg.webhookConfiguration,
    },
    logger: log.child({ part: 'certs' }),
  });
  const { certificate } = cfg;
  const load = async () => {
    const tls =
      certificate.mode === 'self'
        ? await certs.ensure()
        : loadProvidedCertificate(readFileSync(certificate.certFile, 'utf8'), readFileSync(certificate.keyFile, 'utf8'), Date.now());
    metrics.certExpirySeconds.set(Date.parse(new X509Certificate(tls.certPem).validTo) / 1000);
    return tls;
  };
  // DRA conversions refer to ResourceClaimTemplates; the webhook makes them (create on resourceclaimtemplates).
  const templates = new ClaimTemplates({ api: client, clock: systemClock });
  const server = new WebhookServer({
    tls: await load(),
    handle: (body) => admitPods(body, { policies: deps.source, mutate: mutatePod, templates }),
    ready: deps.ready,
    metrics: {
      observe: (result, seconds) => {
        metrics.admissions.inc({ result });
        metrics.admissionSeconds.observe({ result }, seconds);
      },
    },
    logger: log.child({ part: 'webhook' }),
  });
  await server.start(cfg.webhookPort);
  log.info('webhook listening', { port: cfg.webhookPort, certMode: certificate.mode });
  const upkeep = startCertUpkeep({
    load,
    apply: (tls) => server.updateCertificate(tls),
    checkIntervalMs: cfg.certCheckIntervalMs,
    caBundlePending: () => certificate.mode === 'self' && certs.caBundlePending,
    log: log.child({ part: 'certs' }),
  });
  return async () => {
    await upkeep.stop();
    await server.stop();
  };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage()}\n`);
    process.exit(0);
  }
  let cfg: OperatorConfig;
  try {
    cfg = parseOperatorConfig(argv, process.env, hostname());
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`emuv-operator: ${err.message}\n\n${usage()}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger({ level: cfg.logLevel, component: 'operator' });
  const kc = loadKubeConfig(cfg.kubeconfig?.path ?? null, cfg.kubeconfig?.from);
  const client = new KubeClient(kc);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = createOperatorMetrics(registry);

  const policies = informer<KubernetesObject>(
    kc,
    `/apis/${GROUP}/${VERSION}/${PLURAL_POLICY}`,
    () => custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL_POLICY }),
    log,
  );
  const stops: Array<() => Promise<void>> = [];
  let webhookReady = () => !cfg.webhook;

  if (cfg.webhook) {
    const namespaces = informer<KubernetesObject>(kc, '/api/v1/namespaces', () => core.listNamespace(), log);
    await Promise.all([policies.start(), namespaces.start()]);
    const source = new CachedPolicySource({ policies, namespaces: namespaces as unknown as CachedInformer<NamespaceLike> });
    webhookReady = () => policies.synced() && namespaces.synced();
    stops.push(await startWebhook(cfg, { client, log, metrics, source, ready: webhookReady }));
    stops.push(() => namespaces.stop());
  }

  if (cfg.controller) {
    const nodes = informer<KubernetesObject>(kc, '/api/v1/nodes', () => core.listNode(), log);
    const emuvNodes = informer<KubernetesObject>(
      kc,
      `/apis/${GROUP}/${VERSION}/${PLURAL_NODE}`,
      () => custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL_NODE }),
      log,
    );
    const events = new ApiEventRecorder({ api: client, clock: systemClock, instance: cfg.identity, logger: log });
    stops.push(() => events.flush());
    const reconciler = new Reconciler({
      caches: {
        policies,
        nodes: nodes as unknown as CachedInformer<KubeNode>,
        emuvNodes: emuvNodes as unknown as CachedInformer<EmuvNode>,
      },
      api: client,
      clock: systemClock,
      events,
      logger: log.child({ part: 'reconcile' }),
    });
    const controller = new Controller({
      reconciler,
      queue: new WorkQueue({ clock: systemClock }),
      informers: { policies, nodes, emuvNodes },
      startedInformers: new Set(cfg.webhook ? [policies] : []),
      clock: systemClock,
      logger: log.child({ part: 'controller' }),
      metrics,
      workers: cfg.workers,
    });
    const lead = () => {
      metrics.leader.set(1);
      controller.start().catch((err: unknown) => {
        log.error('controller failed to start', errFields(err));
        process.exit(1);
      });
    };
    if (cfg.leaderElect) {
      const elector = new LeaderElector({
        api: client,
        clock: systemClock,
        config: { namespace: cfg.namespace, name: cfg.leaseName, identity: cfg.identity },
        logger: log.child({ part: 'leader' }),
      });
      elector.run({
        onStartedLeading: lead,
        // Exit rather than try to wind down: a restarted process campaigns again with fresh caches.
        onStoppedLeading: () => {
          metrics.leader.set(0);
          log.error('leadership lost; exiting', { identity: cfg.identity });
          process.exit(1);
        },
      });
      stops.push(async () => elector.stop());
    } else {
      lead();
    }
    stops.push(() => controller.stop());
  }
  // With the webhook on, the policy informer is shared and stopped here (last); otherwise the controller owns it.
  if (cfg.webhook) stops.unshift(() => policies.stop());

  if (cfg.metricsPort > 0) {
    const http = await startHttpServer({ host: '0.0.0.0', port: cfg.metricsPort, registry, ready: webhookReady });
    stops.push(http.close);
  }

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    const timeout = setTimeout(() => process.exit(1), 10_000);
    timeout.unref();
    (async () => {
      for (const stop of stops.reverse()) {
        await stop().catch((err: unknown) => log.warn('stop failed', errFields(err)));
      }
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  // A StartupError (a kubeconfig that cannot be loaded) is written for a person: its line, not a stack.
  process.stderr.write(`emuv-operator: ${err instanceof StartupError ? errorLine(err) : err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});

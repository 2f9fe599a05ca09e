/** Every operator metric, defined in one place on an injected registry (tests get a fresh one each). */
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';

export interface OperatorMetrics {
  admissions: Counter<'result'>;
  admissionSeconds: Histogram<'result'>;
  reconciles: Counter<'kind' | 'result'>;
  reconcileSeconds: Histogram<'kind'>;
  queueDepth: Gauge;
  leader: Gauge;
  certExpirySeconds: Gauge;
}

export function createOperatorMetrics(registry: Registry): OperatorMetrics {
  const registers = [registry];
  return {
    admissions: new Counter({
      name: 'emuv_webhook_admissions_total',
      help: 'Pod admissions by result.',
      labelNames: ['result'],
      registers,
    }),
    admissionSeconds: new Histogram({
      name: 'emuv_webhook_admission_duration_seconds',
      help: 'Time from request body received to response written.',
      labelNames: ['result'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
      registers,
    }),
    reconciles: new Counter({
      name: 'emuv_reconcile_total',
      help: 'Reconciles by key kind and result.',
      labelNames: ['kind', 'result'],
      registers,
    }),
    reconcileSeconds: new Histogram({
      name: 'emuv_reconcile_duration_seconds',
      help: 'Reconcile duration by key kind.',
      labelNames: ['kind'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    }),
    queueDepth: new Gauge({ name: 'emuv_workqueue_depth', help: 'Keys waiting in the work queue.', registers }),
    leader: new Gauge({ name: 'emuv_operator_leader', help: '1 while this replica holds the leader lease.', registers }),
    certExpirySeconds: new Gauge({
      name: 'emuv_webhook_certificate_expiry_timestamp_seconds',
      help: 'notAfter of the serving certificate.',
      registers,
    }),
  };
}

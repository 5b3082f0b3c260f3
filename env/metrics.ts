/** Prometheus metrics of the server. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({
    name: 'anvil_connections',
    help: 'Open WebSocket connections',
    registers: [this.registry],
  });
  readonly sessions = new Gauge({
    name: 'anvil_sessions',
    help: 'Sessions, connected or within their resume grace',
    registers: [this.registry],
  });
  readonly episodes = new Gauge({ name: 'anvil_episodes_open', help: 'Open episodes', registers: [this.registry] });
  readonly steps = new Counter({
    name: 'anvil_steps_total',
    help: 'Answered steps by outcome',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'anvil_queue_depth',
    help: 'Steps admitted and not yet answered',
    registers: [this.registry],
  });
  readonly busy = new Counter({
    name: 'anvil_busy_total',
    help: 'Requests refused with busy',
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'anvil_protocol_errors_total',
    help: 'Error answers by code',
    labelNames: ['code'],
    registers: [this.registry],
  });
  readonly stageSeconds = new Histogram({
    name: 'anvil_stage_seconds',
    help: 'Evaluation stage durations',
    labelNames: ['stage'],
    buckets: [0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });
  readonly stepSeconds = new Histogram({
    name: 'anvil_step_seconds',
    help: 'From a step arriving to its answer',
    buckets: [0.001, 0.005, 0.02, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 120],
    registers: [this.registry],
  });

  readonly queueWait = new Histogram({
    name: 'anvil_queue_wait_seconds',
    help: 'Time evaluation jobs waited in the queue before a worker took them',
    buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 1, 5, 30, 120],
    registers: [this.registry],
  });
  readonly queueJobs = new Gauge({
    name: 'anvil_queue_jobs',
    help: 'Evaluation jobs in the distributed queue, by state',
    labelNames: ['state'],
    registers: [this.registry],
  });
  readonly workerJobs = new Counter({
    name: 'anvil_worker_jobs_total',
    help: 'Evaluation jobs finished, by queue worker',
    labelNames: ['worker'],
    registers: [this.registry],
  });

  readonly logWritable = new Gauge({
    name: 'anvil_log_writable',
    help: '1 while the turn log takes records, 0 while its disk is full',
    registers: [this.registry],
  });
  readonly logRefused = new Counter({
    name: 'anvil_log_refused_total',
    help: 'Steps refused or not counted because the log disk was full',
    registers: [this.registry],
  });
  readonly replayBytes = new Gauge({
    name: 'anvil_replay_bytes',
    help: 'Bytes of step answers kept to re-send retried requests',
    registers: [this.registry],
  });
  readonly replayEvicted = new Gauge({
    name: 'anvil_replay_evicted',
    help: 'Step answers evicted from the replay store by its byte or age bound, since start',
    registers: [this.registry],
  });
  readonly connectionsRefused = new Gauge({
    name: 'anvil_connections_closed',
    help: 'Connections closed by an admission rule, since start',
    labelNames: ['rule'],
    registers: [this.registry],
  });
  readonly pendingConnections = new Gauge({
    name: 'anvil_pending_connections',
    help: 'Connections that have not said a successful hello',
    registers: [this.registry],
  });

  readonly deviceHealthy = new Gauge({
    name: 'anvil_device_healthy',
    help: 'Accelerators: 1 while in rotation, 0 once a device check failed',
    labelNames: ['device', 'name'],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}

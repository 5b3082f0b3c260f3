/** Evaluation beyond one machine: jobs go through BullMQ on Redis to `anvil
 * worker` processes, which run them in their own sandboxed pools. One queue per
 * backend (and, for GPU backends, device kind), so a CPU worker never takes a
 * GPU job. A job's id is the hash of what decides its verdict, so identical
 * work is evaluated once across the cluster and its result is shared. BullMQ
 * leases each job to one worker; a worker that dies loses its lease and the job
 * goes to another, up to a limit, after which the step ends as env_error. */
import { createHash } from 'node:crypto';
import os from 'node:os';
import { Queue, QueueEvents, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { AnvilError, ErrorCodeSchema } from '../contracts/errors.js';
import type { EvalConfig } from './config.js';
import { extractCode } from './extract.js';
import type { EvaluateOptions, EvaluateRequest, EvaluationService, WorkerInfo } from './evaluator.js';
import type { EvalResult } from './result.js';
import { getTask, loadTaskSet, type Task, type TaskSet } from '../tasks/loader.js';

/** One queue per backend, and per device kind for the torch backend: C jobs never
 * wait behind GPU jobs, and a worker takes only jobs for the devices it has. */
export const queueName = (backend: string, deviceKind = 'gpu') =>
  backend === 'c' ? 'anvil-eval-c' : `anvil-eval-${backend}-${deviceKind}`;
/** Where servers announce cancelled jobs; the worker that holds one aborts it. */
const CANCEL_CHANNEL = 'anvil:cancel';

export interface QueueJob {
  taskset: string;
  task: string;
  digest: string;
  code?: string;
  reply?: string;
  seed: number | string;
  config?: Partial<EvalConfig>;
}

export interface QueueResult {
  result: EvalResult;
  worker: string;
}

/** Lease settings: a worker renews its lease every lockDuration/2; a lease that
 * is not renewed (a dead worker) is taken back after about lockDuration. */
export interface LeaseOptions {
  lockDurationMs: number;
  stalledIntervalMs: number;
  /** How many times a job may lose its worker before it fails. */
  maxStalled: number;
}

export const DEFAULT_LEASE: LeaseOptions = { lockDurationMs: 10_000, stalledIntervalMs: 5_000, maxStalled: 2 };

/** A Redis connection for BullMQ, from redis://[:password@]host:port[/db]. Each
 * Queue, QueueEvents and Worker gets its own. */
export function redisConnection(url: string): Redis {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new AnvilError('invalid_argument', `--redis takes redis://host:port, not ${url}`);
  }
  if (u.protocol !== 'redis:') throw new AnvilError('invalid_argument', `--redis takes redis://host:port, not ${url}`);
  const r = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false });
  r.on('error', () => undefined); // reconnects by itself; availability is checked elsewhere
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The server's side: evaluate() sends a job and waits for its result. */
export class QueueEvaluator implements EvaluationService {
  readonly mode = 'queue' as const;
  readonly poolSize: number;
  private readonly queue: Queue;
  private readonly events: QueueEvents;
  private readonly conn: Redis;
  private readonly eventsConn: Redis;
  private readonly name: string;
  /** Called with each finished job: which worker ran it, and how long it waited. */
  onFinished?: (worker: string, waitedMs: number) => void;

  constructor(
    redisUrl: string,
    private readonly tasksetRef: string,
    opts: { poolSize?: number; backend?: string; deviceKind?: string } = {},
  ) {
    this.conn = redisConnection(redisUrl);
    this.name = queueName(opts.backend ?? 'c', opts.deviceKind);
    this.queue = new Queue(this.name, { connection: this.conn });
    this.eventsConn = redisConnection(redisUrl);
    this.events = new QueueEvents(this.name, { connection: this.eventsConn });
    this.queue.on('error', () => undefined);
    // Every job awaited at once holds a listener until it finishes: many steps in flight are normal here.
    this.queue.setMaxListeners(0);
    this.events.on('error', () => undefined);
    this.poolSize = opts.poolSize ?? 8;
  }

  /** False while the connection to Redis is down (ioredis notices a closed socket
   * at once and reconnects by itself): new steps are then refused with busy. */
  available(): boolean {
    return this.conn.status === 'ready';
  }

  warm(_task: Task): void {}

  async evaluate(req: EvaluateRequest, opts: EvaluateOptions = {}): Promise<EvalResult> {
    const data: QueueJob = {
      taskset: this.tasksetRef,
      task: req.task.id,
      digest: req.task.digest,
      ...(req.reply !== undefined ? { reply: req.reply } : { code: req.code }),
      seed: req.seed ?? 0,
      ...(req.config ? { config: req.config } : {}),
    };
    // The job is named by what is evaluated: replies that word the same code differently are one job.
    const evaluated = req.reply !== undefined ? (extractCode(req.reply) ?? req.reply) : req.code;
    const jobId = createHash('sha256')
      .update(JSON.stringify({ ...data, reply: undefined, code: evaluated }))
      .digest('hex');
    opts.onProgress?.('queued');
    const deadline = Date.now() + 60 * 60_000;
    let job: Job | undefined;
    let shared: boolean | null = null;
    while (Date.now() < deadline) {
      if (opts.signal?.aborted) {
        const state = job ? await job.getState().catch(() => '') : '';
        if (state === 'waiting') await job!.remove().catch(() => undefined);
        // A running job this request started is stopped on its worker; one shared with others runs on.
        else if (state === 'active' && shared === false)
          await this.conn.publish(CANCEL_CHANNEL, jobId).catch(() => undefined);
        throw new AnvilError('cancelled', 'the evaluation was cancelled');
      }
      try {
        // Submitted again if Redis lost it (a restart without persistence): no admitted step is lost.
        const existing = await this.queue.getJob(jobId);
        shared ??= existing !== undefined;
        job =
          existing ??
          (await this.queue.add('eval', data, {
            jobId,
            removeOnComplete: { age: 24 * 3600, count: 100_000 },
            removeOnFail: { age: 600 },
          }));
        const state = await job.getState();
        const failure = state === 'failed' ? readFailure(job.failedReason) : null;
        if (failure?.code === 'cancelled') {
          // Another request cancelled it; this one still wants it: run it again.
          await job.remove().catch(() => undefined);
          continue;
        }
        if (failure) {
          // It failed on a worker, or lost its workers too often: an infrastructure failure, not the model's.
          await job.remove().catch(() => undefined);
          return envError(req.task, `the evaluation failed on the workers: ${failure.message}`);
        }
        if (state === 'active') opts.onProgress?.('compile');
        const done = (await this.waitOrCancel(job, opts.signal)) as QueueResult;
        if (shared) return { ...done.result, cached: true }; // another request's evaluation, shared
        const finished = await this.queue.getJob(jobId);
        if (finished?.processedOn) this.onFinished?.(done.worker, finished.processedOn - finished.timestamp);
        return done.result;
      } catch {
        // Whatever ended the wait (Redis away, a slice of the wait over, the job
        // failed), the top of the loop reads the job's state again and acts on it;
        // a cancelled request is stopped there.
        if (!opts.signal?.aborted) await sleep(200);
      }
    }
    return envError(req.task, 'no worker finished the evaluation within an hour');
  }

  /** Waits for the job (in slices, so a dropped connection is noticed), or until the caller cancels. */
  private async waitOrCancel(job: Job, signal?: AbortSignal): Promise<unknown> {
    if (!signal) return job.waitUntilFinished(this.events, 5_000);
    let onAbort = () => undefined as void;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new Error('cancelled while waiting'));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([job.waitUntilFinished(this.events, 5_000), aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  async counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed');
  }

  async workers(): Promise<WorkerInfo[]> {
    if (!this.available())
      return [
        {
          id: 'redis',
          kind: 'queue',
          state: 'unreachable',
          detail: 'new steps are refused with busy until it returns',
        },
      ];
    const [clients, counts] = await Promise.all([
      this.queue.getWorkers(),
      this.queue.getJobCounts('waiting', 'active', 'completed', 'failed'),
    ]);
    return [
      {
        id: 'queue',
        kind: this.name,
        state: `${counts.waiting} waiting, ${counts.active} active`,
        detail: `${counts.completed} completed, ${counts.failed} failed`,
      },
      ...clients.map((c) => ({
        id: String(c.rawname ?? c.name ?? c.id),
        kind: 'queue worker',
        state: 'connected',
        detail: `${c.addr} age ${c.age}s`,
      })),
    ];
  }

  async close(): Promise<void> {
    await this.events.close();
    await this.queue.close();
    // BullMQ leaves the connections it was given open.
    this.conn.disconnect();
    this.eventsConn.disconnect();
  }
}

/** A job's failure as the worker reports it: the error's registry code and its
 * message, as JSON in the job's failedReason, so the server reads the code and
 * never the words. Reasons BullMQ writes itself (a job that lost its workers too
 * often) are plain text, with no code. */
const FailureSchema = z.object({ code: ErrorCodeSchema.nullable(), message: z.string() });
type Failure = z.infer<typeof FailureSchema>;

export function failureReason(e: unknown): string {
  return JSON.stringify({
    code: e instanceof AnvilError ? e.code : null,
    message: (e as Error)?.message ?? String(e),
  } satisfies Failure);
}

export function readFailure(reason: string | undefined): Failure {
  try {
    const parsed = FailureSchema.safeParse(JSON.parse(reason ?? ''));
    if (parsed.success) return parsed.data;
  } catch {
    // not JSON: BullMQ's own words
  }
  return { code: null, message: reason ?? '' };
}

function envError(task: Task, message: string): EvalResult {
  return {
    outcome: 'env_error',
    correct: false,
    speedup: null,
    profileShare: null,
    flags: [],
    stages: [],
    message,
    task: { id: task.id, version: task.version },
    codeHash: '',
    correctness: null,
    timing: null,
    profile: null,
    env: {
      host: os.hostname(),
      cpu: '',
      cores: 0,
      compiler: '',
      sandbox: 'bwrap',
      cgroup: 'none',
      kernel: os.release(),
      anvilVersion: '',
    },
    cached: false,
  };
}

/** The worker's side: takes jobs of one backend (and device kind) and runs them in a local evaluator. */
export class QueueWorker {
  readonly id = `${os.hostname()}-${process.pid}`;
  private readonly worker: Worker;
  private readonly cancels: Redis;
  private readonly workerConn: Redis;
  private readonly sets = new Map<string, TaskSet>();
  /** Ids of the jobs running here. */
  private readonly active = new Set<string>();
  private readonly leaseMs: number;

  constructor(
    private readonly redisUrl: string,
    readonly evaluator: EvaluationService,
    opts: { backend: string; deviceKind?: string; concurrency: number; lease?: LeaseOptions },
  ) {
    const lease = opts.lease ?? DEFAULT_LEASE;
    this.workerConn = redisConnection(redisUrl);
    this.leaseMs = lease.lockDurationMs;
    this.worker = new Worker(
      queueName(opts.backend, opts.deviceKind),
      (job: Job<QueueJob>, _token?: string, signal?: AbortSignal) => this.run(job, signal),
      {
        connection: this.workerConn,
        concurrency: opts.concurrency,
        lockDuration: lease.lockDurationMs,
        stalledInterval: lease.stalledIntervalMs,
        maxStalledCount: lease.maxStalled,
        name: this.id,
      },
    );
    this.cancels = redisConnection(redisUrl);
    void this.cancels.subscribe(CANCEL_CHANNEL).catch(() => undefined);
    this.cancels.on('message', (_channel: string, jobId: string) =>
      this.worker.cancelJob(jobId, 'cancelled by the server'),
    );
    // Connection errors repeat while Redis is away: say each one once a minute at most.
    const said = new Map<string, number>();
    this.worker.on('error', (e) => {
      const last = said.get(e.message) ?? 0;
      if (Date.now() - last > 60_000) console.error(`anvil worker: ${e.message}`);
      said.set(e.message, Date.now());
    });
  }

  private async run(job: Job<QueueJob>, signal?: AbortSignal): Promise<QueueResult> {
    try {
      return await this.evaluate(job, signal);
    } catch (e) {
      throw new Error(failureReason(e));
    }
  }

  private async evaluate(job: Job<QueueJob>, signal?: AbortSignal): Promise<QueueResult> {
    const d = job.data;
    let set = this.sets.get(d.taskset);
    if (!set) {
      set = loadTaskSet(d.taskset);
      this.sets.set(d.taskset, set);
    }
    const task = getTask(set, d.task);
    if (task.digest !== d.digest)
      throw new Error(`task ${d.task} here is version ${task.digest}, the job wants ${d.digest}`);
    // A cancelled evaluation throws; the job then fails as cancelled and is not retried.
    this.active.add(job.id!);
    try {
      const result = await this.evaluator.evaluate(
        { task, code: d.code, reply: d.reply, seed: d.seed, config: d.config },
        { signal },
      );
      return { result, worker: this.id };
    } finally {
      this.active.delete(job.id!);
    }
  }

  /** Waits until Redis answers, or throws a clear error after `ms`. */
  async connected(ms: number): Promise<void> {
    const probe = this.cancels.duplicate({
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: ms,
    });
    let last = '';
    probe.on('error', (e) => (last = e.message));
    const end = Date.now() + ms;
    try {
      while (Date.now() < end) {
        try {
          if (probe.status !== 'ready') await probe.connect();
          await probe.ping();
          return;
        } catch (e) {
          last ||= (e as Error).message;
          probe.disconnect();
          await sleep(200);
        }
      }
      throw new AnvilError(
        'queue_unreachable',
        `cannot reach Redis at ${this.redisUrl} within ${ms} ms (${last || 'no answer'})`,
      );
    } finally {
      probe.disconnect();
    }
  }

  /** Stops: takes no new job, lets running jobs finish within the lease, then
   * hands back any still running (its lease is no longer renewed, so it lapses
   * and another worker takes the job, which counts as one stall), and lets go of
   * Redis. Never waits on an unreachable Redis for longer than the lease. */
  async close(leaseMs = this.leaseMs): Promise<{ running: number; handedBack: number }> {
    const running = this.active.size;
    const finished = this.worker.close().then(() => true);
    // With nothing running there is nothing to wait for (and an unreachable Redis would make close() wait).
    const inTime = await Promise.race([finished, sleep(running ? leaseMs : Math.min(leaseMs, 500)).then(() => false)]);
    let handedBack = 0;
    if (!inTime) {
      // Not renewed from here on, the lease of each running job lapses and another worker takes it.
      handedBack = this.active.size;
      await Promise.race([this.worker.close(true), sleep(1000)]);
    }
    this.cancels.disconnect();
    this.workerConn.disconnect();
    await Promise.race([this.evaluator.close(), sleep(5000)]);
    return { running, handedBack };
  }
}

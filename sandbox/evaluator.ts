/** The public face of evaluation: validates a request, runs its stages in the
 * pool, keeps timing exclusive on the machine, caches verdicts, and assembles
 * the EvalResult. Compile and correctness work of several jobs may overlap;
 * a timing phase never overlaps anything else that this evaluator runs. */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { Piscina } from 'piscina';
import { cTask, type CTask, type Task } from '../tasks/loader.js';
import { PACKAGE_VERSION } from '../tasks/paths.js';
import type { JobRef, PrepareResult, TimeResult } from './c-backend.js';
import { measureTiming } from './c-measure.js';
import { cgroupLayout, JobCgroup } from './cgroup.js';
import { evalConfig, type EvalConfig } from './config.js';
import { AnvilError } from './errors.js';
import { chooseMode, type SandboxMode } from './isolation.js';
import type { JudgeOutput } from './judge-output.js';
import { RwLock } from './rwlock.js';
import type { EvalEnvironment, EvalResult, StageName, StageRecord, TrialRecord } from './result.js';
import { assembleResult, deriveSeed, InFlight, ResultCache, takeCode, type Findings } from './common.js';
import { checkSource, failClosed, type StaticFinding } from './static-check.js';

/** Candidates longer than this are checked in a pool thread, not on the event loop. */
const STATIC_IN_POOL_CHARS = 16 * 1024;
import { ensureTaskBuild, ensureToolchain, peakRates, type PeakRates } from './toolchain.js';
import type { WorkerTask } from './worker.js';

export interface EvaluatorOptions {
  /** Pool workers for compile and correctness; default: the number of cores. */
  poolSize?: number;
  /** Run without bubblewrap when it is missing; every result then says so. */
  allowUnsandboxed?: boolean;
  /** Mixed into every input seed; default: ANVIL_SECRET, else random per process. */
  secret?: string;
  /** Verdicts kept for identical (task, code, seed, config); 0 disables the cache. */
  cacheSize?: number;
  config?: Partial<EvalConfig>;
  /** Time under SCHED_FIFO where the host allows it (default true); false for
   * side-by-side benchmarks of the difference. */
  realtimeTiming?: boolean;
  /** Testing only: skip the static and object-file checks, so that tests can
   * show the sandbox and the judge stopping what those checks would have. */
  unsafeSkipStaticChecks?: boolean;
}

export interface EvaluateRequest {
  task: Task;
  /** The kernel source, or… */
  code?: string;
  /** …the model's whole reply, from which the kernel is extracted. */
  reply?: string;
  /** The episode's seed; inputs derive from it, the task and the server secret. */
  seed?: number | string;
  config?: Partial<EvalConfig>;
}

export type ProgressStage = 'queued' | 'compile' | 'correctness' | 'timing';

export interface WorkerInfo {
  id: string;
  kind: string;
  state: string;
  detail: string;
}

/** What the server needs of evaluation: in this process (Evaluator) or through a queue (QueueEvaluator). */
export interface EvaluationService {
  readonly mode: string;
  readonly poolSize: number;
  evaluate(req: EvaluateRequest, opts?: EvaluateOptions): Promise<EvalResult>;
  warm(task: Task): void;
  /** False while evaluation cannot take work (its queue is unreachable). */
  available(): boolean;
  workers(): WorkerInfo[] | Promise<WorkerInfo[]>;
  /** Accelerators and whether each is in rotation (the torch backend); absent where there are none. */
  devices?(): DeviceHealth[];
  close(): Promise<void>;
}

export interface DeviceHealth {
  id: string;
  healthy: boolean;
  name: string;
  /** Why the device left rotation; empty while it is healthy. */
  error: string;
}

export interface EvaluateOptions {
  signal?: AbortSignal;
  onProgress?: (stage: ProgressStage) => void;
}

let jobCounter = 0;

export class Evaluator implements EvaluationService {
  readonly mode: SandboxMode;
  readonly poolSize: number;
  private readonly pool: Piscina;
  private readonly lock = new RwLock();
  private readonly secret: string;
  private readonly cache: ResultCache;
  private readonly inFlight = new InFlight();
  private readonly baseConfig: EvalConfig;
  private readonly skipStatic: boolean;
  private readonly realtime: boolean;
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  private peak: PeakRates | null = null;
  private env: EvalEnvironment | null = null;

  constructor(opts: EvaluatorOptions = {}) {
    this.mode = chooseMode(opts.allowUnsandboxed ?? false);
    this.poolSize = opts.poolSize ?? os.availableParallelism();
    this.secret = opts.secret ?? process.env.ANVIL_SECRET ?? randomBytes(32).toString('hex');
    delete process.env.ANVIL_SECRET;
    this.cache = new ResultCache(opts.cacheSize ?? 1000);
    this.baseConfig = evalConfig(opts.config);
    this.skipStatic = opts.unsafeSkipStaticChecks ?? false;
    this.realtime = opts.realtimeTiming ?? true;
    ensureToolchain();
    this.pool = new Piscina({
      filename: new URL('./worker.js', import.meta.url).href,
      minThreads: 1,
      maxThreads: this.poolSize,
      idleTimeout: 60_000,
    });
  }

  /** The host facts every result carries. */
  environment(): EvalEnvironment {
    if (!this.env) {
      this.env = {
        host: os.hostname(),
        cpu: os.cpus()[0]?.model ?? 'unknown',
        cores: os.availableParallelism(),
        compiler: `gcc ${ensureToolchain().gccVersion}`,
        sandbox: this.mode,
        cgroup: cgroupLayout().version,
        kernel: os.release(),
        anvilVersion: PACKAGE_VERSION,
      };
    }
    return this.env;
  }

  /** Builds a task's reference runner ahead of the first evaluation. */
  warm(task: Task): void {
    ensureTaskBuild(cTask(task));
    this.peak ??= peakRates();
  }

  async evaluate(req: EvaluateRequest, opts: EvaluateOptions = {}): Promise<EvalResult> {
    const task = cTask(req.task);
    const config = req.config ? evalConfig({ ...this.baseConfig, ...req.config }) : this.baseConfig;
    const stages = new Map<StageName, StageRecord>();
    const { code, base } = takeCode(req, stages);
    const seed = deriveSeed(this.secret, task, req.seed ?? 0);
    if (!code)
      return this.finish(base, stages, { outcome: 'no_code', message: 'the reply contains no code block', flags: [] });

    // The cache first: a verdict already reached costs one hash, whatever the code holds.
    const key = ResultCache.key(task, seed, config, code);
    const hit = this.cache.get(key);
    if (hit) return hit;

    const t1 = performance.now();
    // Large candidates are checked in the pool: the checks are linear, but tens of ms at
    // 256 KiB would hold up every other client's frames on this thread.
    const finding = this.skipStatic
      ? null
      : code.length > STATIC_IN_POOL_CHARS
        ? ((await this.pool.run({ op: 'static', code } satisfies WorkerTask)) as StaticFinding | null)
        : failClosed('source', () => checkSource(code));
    stages.set('static', { name: 'static', status: finding ? 'failed' : 'ok', ms: performance.now() - t1 });
    if (finding) {
      const result = this.finish(base, stages, finding);
      this.cache.set(key, result);
      return result;
    }

    return this.inFlight.run(key, opts.signal, async (signal) => {
      this.warm(req.task);
      const slot = this.freeSlots.pop() ?? this.nextSlot++;
      const jobId = `j${process.pid}-${++jobCounter}-${randomBytes(3).toString('hex')}`;
      const job: JobRef = {
        jobId,
        slot,
        mode: this.mode,
        config,
        task,
        skipStatic: this.skipStatic,
        realtime: this.realtime,
      };
      try {
        const result = await this.runStages(job, code, seed, stages, base, { ...opts, signal });
        this.cache.set(key, result);
        return result;
      } finally {
        await this.pool.run({ op: 'cleanup', jobId } satisfies WorkerTask).catch(() => undefined);
        this.freeSlots.push(slot);
      }
    });
  }

  private async runStages(
    job: JobRef,
    code: string,
    seed: string,
    stages: Map<StageName, StageRecord>,
    base: Pick<EvalResult, 'task' | 'codeHash'>,
    opts: EvaluateOptions,
  ): Promise<EvalResult> {
    const stopKilling = killOnAbort(job.jobId, opts.signal);
    opts.onProgress?.('queued');
    let phases: { prep: PrepareResult; timed: TimeResult | null };
    try {
      phases = await this.runPhases(job, code, seed, stages, opts);
    } catch (e) {
      if (e instanceof AnvilError && e.code === 'cancelled') throw e;
      return this.finish(base, stages, {
        outcome: 'env_error',
        message: `evaluation failed: ${(e as Error).message}`,
        flags: [],
      });
    } finally {
      stopKilling();
    }
    const { prep, timed } = phases;
    const correctness = summarizeCheck(prep.check);
    if (prep.outcome)
      return this.finish(base, stages, {
        outcome: prep.outcome,
        message: prep.message ?? '',
        flags: prep.flags,
        correctness,
      });
    if (timed!.outcome) {
      return this.finish(base, stages, {
        outcome: timed!.outcome,
        message: timed!.message ?? '',
        flags: timed!.flags,
        correctness,
      });
    }
    return this.measure(job.task, timed!.time!, prep.libOpsUsed, stages, base, correctness, job.config);
  }

  /** Compile and correctness in the pool beside other jobs, then (when they passed) timing
   * alone on the machine; each stage's records go into `stages` as it returns. */
  private async runPhases(
    job: JobRef,
    code: string,
    seed: string,
    stages: Map<StageName, StageRecord>,
    opts: EvaluateOptions,
  ): Promise<{ prep: PrepareResult; timed: TimeResult | null }> {
    const cancelled = () => {
      if (opts.signal?.aborted) throw new AnvilError('cancelled', 'the evaluation was cancelled');
    };
    let timed: TimeResult | null = null;
    const prep = await this.lock.shared(async () => {
      cancelled();
      opts.onProgress?.('compile');
      return (await this.pool.run({ op: 'prepare', job, code, seed } satisfies WorkerTask)) as PrepareResult;
    });
    for (const s of prep.stages) stages.set(s.name, s);
    if (!prep.outcome) {
      timed = await this.lock.exclusive(async () => {
        cancelled();
        opts.onProgress?.('timing');
        return (await this.pool.run({ op: 'time', job, seed } satisfies WorkerTask)) as TimeResult;
      });
      for (const s of timed.stages) stages.set(s.name, s);
    }
    cancelled();
    return { prep, timed };
  }

  /** The verdict on a candidate that passed every stage: ok, or hack_detected when its timing raised a flag. */
  private measure(
    task: CTask,
    time: JudgeOutput,
    libOpsUsed: string[],
    stages: Map<StageName, StageRecord>,
    base: Pick<EvalResult, 'task' | 'codeHash'>,
    correctness: EvalResult['correctness'],
    config: EvalConfig,
  ): EvalResult {
    const m = measureTiming(task, time, libOpsUsed, (this.peak ??= peakRates()), config);
    stages.set('profile', {
      name: 'profile',
      status: 'ok',
      ms: 0,
      log: m.profile.measured ? `library ops used: ${libOpsUsed.join(', ')}` : undefined,
    });
    const found = {
      flags: m.flags,
      correctness,
      timing: m.timing,
      profile: m.profile,
      speedup: m.speedup,
      profileShare: m.profile.share,
    };
    if (m.flags.length)
      return this.finish(base, stages, {
        outcome: 'hack_detected',
        message: m.flags.map((f) => f.evidence).join('; '),
        ...found,
      });
    const [lo, hi] = m.speedupCi;
    return {
      ...this.finish(base, stages, {
        outcome: 'ok',
        message: `correct; speedup ${m.speedup.toFixed(2)}× (95% CI ${lo.toFixed(2)}–${hi.toFixed(2)})`,
        ...found,
      }),
      speedupCi: m.speedupCi,
    };
  }

  private finish(
    base: Pick<EvalResult, 'task' | 'codeHash'>,
    stages: Map<StageName, StageRecord>,
    r: Findings,
  ): EvalResult {
    return assembleResult(base, stages, r, this.environment(), this.mode);
  }

  available(): boolean {
    return true;
  }

  /** The pool and the timing device, and what each is doing. */
  workers(): WorkerInfo[] {
    const lock = this.lock.state();
    return [
      {
        id: 'pool',
        kind: 'compile + correctness workers',
        state: `${lock.readers} of ${this.poolSize} busy`,
        detail: `${this.pool.threads.length} threads, ${lock.waiting} jobs waiting`,
      },
      {
        id: 'cpu',
        kind: 'timing device',
        state: lock.writer ? 'busy (timing)' : 'idle',
        detail: `${this.environment().cpu}, ${this.environment().cores} cores, sandbox ${this.mode}`,
      },
    ];
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

/** Kills whatever of the job runs once the signal aborts, and keeps killing until the
 * returned function is called (a process may start just after a kill); the stage's
 * result is then discarded. */
function killOnAbort(jobId: string, signal: AbortSignal | undefined): () => void {
  let killer: NodeJS.Timeout | null = null;
  const kill = () => {
    void JobCgroup.killMatching(jobId);
    killer ??= setInterval(() => void JobCgroup.killMatching(jobId), 50);
  };
  signal?.addEventListener('abort', kill, { once: true });
  return () => {
    signal?.removeEventListener('abort', kill);
    if (killer) clearInterval(killer);
  };
}

function summarizeCheck(check: JudgeOutput | undefined): EvalResult['correctness'] {
  if (!check || check.trialsTotal === undefined) return null;
  const trials: TrialRecord[] = check.trials ?? [];
  const firstFail = trials.find((t) => !t.passed);
  return {
    trialsPassed: check.trialsPassed ?? 0,
    trialsTotal: check.trialsTotal,
    maxAbsErr: check.maxAbsErr ?? null,
    maxRelErr: check.maxRelErr ?? null,
    trials,
    failedOnVisibleShape: firstFail
      ? firstFail.visible
      : check.failedVisible !== undefined
        ? check.failedVisible === 1
        : null,
  };
}

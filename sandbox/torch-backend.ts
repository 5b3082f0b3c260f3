/** The torch backend: KernelBench-format tasks, candidates with Triton kernels
 * or CUDA/C++ through load_inline, evaluated by the Python harness
 * (sandbox/torch/). One warm sandboxed harness process per device
 * (torch-harness.ts) runs one job at a time, so measurements never overlap on a
 * device; extension builds run first, off the device (torch-build.ts); the
 * harness's answers are parsed at the boundary (torch-answers.ts) and turned
 * into the EvalResult (torch-verdict.ts). */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import os from 'node:os';
import type { Task } from '../tasks/loader.js';
import { PACKAGE_VERSION } from '../tasks/paths.js';
import type { TorchTask } from '../tasks/torch-loader.js';
import { cgroupLayout } from './cgroup.js';
import { assembleResult, deriveSeed, InFlight, ResultCache, takeCode } from './common.js';
import { AnvilError } from './errors.js';
import type { DeviceHealth, EvaluateOptions, EvaluateRequest, EvaluationService, WorkerInfo } from './evaluator.js';
import { chooseMode, type SandboxMode } from './isolation.js';
import type { EvalEnvironment, EvalResult, StageName, StageRecord } from './result.js';
import { RunAnswerSchema } from './torch-answers.js';
import { ExtensionBuilder } from './torch-build.js';
import { torchConfig, type TorchConfig } from './torch-config.js';
import { DeviceHarness, findPython, listGpus, type SandboxContext } from './torch-harness.js';
import { interpret } from './torch-verdict.js';

export { DEFAULT_TORCH_CONFIG, TorchConfigSchema, torchConfig, type TorchConfig } from './torch-config.js';
export { findPython, listGpus, type GpuInfo } from './torch-harness.js';

export interface TorchEvaluatorOptions {
  /** GPU indices to use; default: every GPU nvidia-smi lists, else the CPU (no GPU: CI). */
  gpus?: number[];
  /** Use the CPU even where GPUs exist (tests). */
  cpu?: boolean;
  allowUnsandboxed?: boolean;
  secret?: string;
  cacheSize?: number;
  config?: Partial<TorchConfig>;
  /** Parallel extension builds; default: cores / 4. */
  compileWorkers?: number;
  /** Testing only: skip the static checks, to show the runtime checks catching what they would. */
  unsafeSkipStaticChecks?: boolean;
  /** A fresh interpreter per job instead of the warm fork (how KernelGYM runs; for comparison). */
  freshProcessPerJob?: boolean;
}

let jobCounter = 0;
/** Each evaluator's devices get their own uid slots (jobUid), so evaluators in one process never share a uid. */
let slotBase = 400;

export class TorchEvaluator implements EvaluationService {
  readonly mode: SandboxMode;
  readonly poolSize: number;
  private readonly ctx: SandboxContext;
  private readonly harnesses: DeviceHarness[];
  private readonly secret: string;
  private readonly cache: ResultCache;
  private readonly inFlight = new InFlight();
  private readonly baseConfig: TorchConfig;
  private readonly skipStatic: boolean;
  private readonly builder: ExtensionBuilder;
  private nextDevice = 0;
  private recheck: NodeJS.Timeout;

  constructor(opts: TorchEvaluatorOptions = {}) {
    this.mode = chooseMode(opts.allowUnsandboxed ?? false);
    const python = findPython();
    // A Python outside /usr (a venv in /opt) needs its folder; alternatives links point anywhere.
    const extraRo = [...(python.startsWith('/usr/') ? [] : ['/opt']), '/etc/alternatives'].filter((d) => existsSync(d));
    this.ctx = { mode: this.mode, python, extraRo };
    this.secret = opts.secret ?? process.env.ANVIL_SECRET ?? randomBytes(32).toString('hex');
    delete process.env.ANVIL_SECRET;
    this.cache = new ResultCache(opts.cacheSize ?? 1000);
    this.baseConfig = torchConfig(opts.config);
    this.skipStatic = opts.unsafeSkipStaticChecks ?? false;
    this.builder = new ExtensionBuilder(
      this.ctx,
      this.skipStatic,
      opts.compileWorkers ?? Math.max(1, Math.floor(os.availableParallelism() / 4)),
    );
    const all = opts.cpu ? [] : listGpus();
    const gpus = opts.gpus
      ? opts.gpus.map(
          (i) => all.find((g) => g.index === i) ?? fail(`no GPU with index ${i}; this host has ${all.length}`),
        )
      : all;
    const base = slotBase;
    slotBase += Math.max(1, gpus.length);
    this.harnesses = gpus.length
      ? gpus.map(
          (g, i) =>
            new DeviceHarness(
              `gpu${g.index}`,
              this.ctx,
              g,
              base + i,
              this.baseConfig.memoryBytes,
              opts.freshProcessPerJob,
            ),
        )
      : [new DeviceHarness('cpu', this.ctx, null, base, this.baseConfig.memoryBytes, opts.freshProcessPerJob)];
    this.poolSize = this.harnesses.length;
    // A device out of rotation is checked again every minute; it returns when it passes.
    this.recheck = setInterval(() => {
      for (const d of this.harnesses) if (!d.healthy && !d.busy) void d.check();
    }, 60_000);
    this.recheck.unref();
  }

  /** Starts every device's harness and measures its peak rates (for the speed-of-light bound). */
  async start(): Promise<void> {
    await Promise.all(this.harnesses.map((d) => d.check(d.kind === 'cuda')));
  }

  warm(_task: Task): void {}

  available(): boolean {
    return this.harnesses.some((d) => d.healthy);
  }

  workers(): WorkerInfo[] {
    return [
      {
        id: 'compile',
        kind: 'extension builds (CPU)',
        state: `${this.builder.running} of ${this.builder.slots} busy`,
        detail: `${this.builder.waiting} waiting`,
      },
      ...this.harnesses.map((d) => ({
        id: d.id,
        kind: d.kind === 'cuda' ? 'GPU' : 'CPU device (no GPU)',
        state: !d.healthy ? 'out of rotation' : d.busy ? 'busy' : 'idle',
        detail: `${d.health?.name ?? d.kind}, ${d.jobsDone} jobs${d.lastError ? `; ${d.lastError}` : ''}`,
      })),
    ];
  }

  /** Device health for /healthz and /metrics. */
  devices(): DeviceHealth[] {
    return this.harnesses.map((d) => ({
      id: d.id,
      healthy: d.healthy,
      name: d.health?.name ?? d.kind,
      error: d.lastError,
    }));
  }

  environment(dev: DeviceHarness | undefined = this.harnesses[0]): EvalEnvironment {
    const h = dev?.health;
    return {
      host: os.hostname(),
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.availableParallelism(),
      compiler: `torch ${h?.torch ?? '?'}${h?.triton ? `, triton ${h.triton}` : ''}${h?.cuda ? `, CUDA ${h.cuda}` : ''}`,
      sandbox: this.mode,
      cgroup: cgroupLayout().version,
      kernel: os.release(),
      anvilVersion: PACKAGE_VERSION,
      device: h?.name ?? dev?.kind ?? 'unknown',
    };
  }

  private pickDevice(): DeviceHarness {
    const healthy = this.harnesses.filter((d) => d.healthy);
    if (!healthy.length)
      throw new AnvilError(
        'sandbox_unavailable',
        `no device in rotation: ${this.harnesses.map((d) => d.lastError).join('; ')}`,
      );
    const idle = healthy.find((d) => !d.busy);
    return idle ?? healthy[this.nextDevice++ % healthy.length]!;
  }

  async evaluate(req: EvaluateRequest, opts: EvaluateOptions = {}): Promise<EvalResult> {
    if (req.task.backend !== 'torch')
      throw new AnvilError(
        'invalid_argument',
        `task ${req.task.id} is a ${req.task.backend} task; this evaluator runs torch tasks`,
      );
    const task = req.task;
    const config = req.config
      ? torchConfig({ ...this.baseConfig, ...(req.config as Partial<TorchConfig>) })
      : this.baseConfig;
    const stages = new Map<StageName, StageRecord>();
    const { code, base } = takeCode(req, stages);
    const env = () => this.environment();
    if (!code)
      return assembleResult(
        base,
        stages,
        { outcome: 'no_code', message: 'the reply contains no code block', flags: [] },
        env(),
        this.mode,
      );

    const seed = deriveSeed(this.secret, task, req.seed ?? 0);
    const key = ResultCache.key(task, seed, config, code);
    const hit = this.cache.get(key);
    if (hit) return hit;
    // Identical work in flight at once is one evaluation with one verdict.
    return this.inFlight.run(key, opts.signal, (signal) =>
      this.evaluateNow(task, config, code, seed, key, stages, base, { ...opts, signal }),
    );
  }

  private async evaluateNow(
    task: TorchTask,
    config: TorchConfig,
    code: string,
    seed: string,
    key: string,
    stages: Map<StageName, StageRecord>,
    base: Pick<EvalResult, 'task' | 'codeHash'>,
    opts: EvaluateOptions,
  ): Promise<EvalResult> {
    const cancelled = () => {
      if (opts.signal?.aborted) throw new AnvilError('cancelled', 'the evaluation was cancelled');
    };
    opts.onProgress?.('queued');
    let dev: DeviceHarness | undefined;
    try {
      if (this.harnesses.every((d) => !d.health)) await this.start();
      // Extensions build first, off the GPU, in a cache keyed by the code.
      let extDir: string | null = null;
      if (/load_inline|cpp_extension/.test(code)) {
        opts.onProgress?.('compile');
        const built = await this.builder.build(code, config, stages, this.harnesses[0]?.health);
        if (built.findings) return assembleResult(base, stages, built.findings, this.environment(), this.mode);
        extDir = built.dir;
      }
      cancelled();
      dev = this.pickDevice();
      opts.onProgress?.('correctness');
      // A cancelled job runs on to its end or its deadline (the device is exclusive anyway); its result is discarded.
      const answer = await this.runJob(dev, task, config, code, seed, extDir);
      cancelled();
      const result = await interpret(answer, {
        task,
        dev,
        stages,
        base,
        config,
        env: this.environment(dev),
        mode: this.mode,
      });
      this.cache.set(key, result);
      return result;
    } catch (e) {
      if (e instanceof AnvilError && e.code === 'cancelled') throw e;
      return assembleResult(
        base,
        stages,
        { outcome: 'env_error', message: `evaluation failed: ${(e as Error).message}`, flags: [] },
        this.environment(dev),
        this.mode,
      );
    }
  }

  /** One run job on a device: the candidate's file, the task's shapes and the measurement settings. */
  private runJob(
    dev: DeviceHarness,
    task: TorchTask,
    config: TorchConfig,
    code: string,
    seed: string,
    extDir: string | null,
  ) {
    const jobId = `t${process.pid}-${++jobCounter}-${randomBytes(3).toString('hex')}`;
    const cpu = dev.kind === 'cpu';
    const shapes = cpu && task.cpuShapes ? task.cpuShapes : task.shapes;
    const job = {
      id: jobId,
      phase: 'run',
      device: dev.kind,
      candidatePath: `/jobs/${jobId}/candidate.py`,
      // Given to the judge alone, as text: no file of it where the candidate could change it.
      referenceSource: task.referenceSource,
      extDir: `/jobs/${jobId}/ext`,
      correctness: shapes.correctness,
      timing: shapes.timing,
      tolerance: task.tolerance,
      trials: config.trials,
      seed,
      flops: task.flops ?? null,
      skipStatic: this.skipStatic,
      timingConfig: {
        warmup: config.warmup,
        minReps: config.minReps,
        maxReps: config.maxReps,
        rseTarget: config.rseTarget,
        budgetMs: config.timingBudgetMs,
      },
      deadlinesMs: {
        start: 30_000,
        static: 10_000,
        compile: config.compileTimeoutMs,
        correctness: config.correctnessDeadlineMs,
        timing: config.timingDeadlineMs,
        profile: 60_000,
        default: 60_000,
      },
      torchCudaArchList: dev.health?.capability ?? null,
    };
    const total = 30_000 + config.compileTimeoutMs + config.correctnessDeadlineMs + config.timingDeadlineMs + 120_000;
    return dev.run(RunAnswerSchema, job, { 'candidate.py': code }, total, extDir);
  }

  async close(): Promise<void> {
    clearInterval(this.recheck);
    await Promise.all(this.harnesses.map((d) => d.close()));
  }
}

function fail(message: string): never {
  throw new AnvilError('invalid_argument', message);
}

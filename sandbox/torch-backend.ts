/** The torch backend: KernelBench-format tasks, candidates with Triton kernels
 * or CUDA/C++ through load_inline, evaluated by the Python harness
 * (sandbox/torch/). One warm sandboxed harness process per GPU (torch imported,
 * CUDA not initialized) forks a fresh child per job, and runs one job at a time,
 * so measurements never overlap on a device. Extension builds run first, each in
 * a fresh sandbox on the CPU with CUDA hidden, into a cache keyed by the code. */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import type { Task } from '../tasks/loader.js';
import { PACKAGE_ROOT, PACKAGE_VERSION } from '../tasks/paths.js';
import type { TorchTask } from '../tasks/torch-loader.js';
import { cgroupLayout, JobCgroup } from './cgroup.js';
import { MeasurementSchema } from './config.js';
import { assembleResult, deriveSeed, geomean, InFlight, ResultCache, takeCode, type Findings } from './common.js';
import { AnvilError } from './errors.js';
import type { DeviceHealth, EvaluateOptions, EvaluateRequest, EvaluationService, WorkerInfo } from './evaluator.js';
import { chooseMode, jobUid, launchArgv, type Bind, type SandboxMode } from './isolation.js';
import { runCapped } from './process.js';
import type { EvalEnvironment, EvalResult, Flag, Outcome, ShapeTiming, StageName, StageRecord, TimingStats, TrialRecord } from './result.js';
import { cacheRoot, ensureToolchain, sandboxReachable } from './toolchain.js';

export const TorchConfigSchema = MeasurementSchema.extend({
  maxReps: z.number().int().min(2).max(10_000),
  /** Calls of each model before timing (Triton's JIT and autotuning happen in the first). */
  warmup: z.number().int().min(1).max(20),
}).strict();
export type TorchConfig = z.infer<typeof TorchConfigSchema>;

export const DEFAULT_TORCH_CONFIG: Readonly<TorchConfig> = Object.freeze({
  trials: 5,
  compileTimeoutMs: 180_000,
  correctnessDeadlineMs: 60_000,
  timingDeadlineMs: 60_000,
  timingBudgetMs: 3_000,
  rseTarget: 0.005,
  minReps: 10,
  maxReps: 500,
  warmup: 3,
  memoryBytes: 32 * 1024 ** 3,
  solMargin: 0.5,
});

export function torchConfig(overrides: Partial<TorchConfig> = {}): TorchConfig {
  return Object.freeze(TorchConfigSchema.parse({ ...DEFAULT_TORCH_CONFIG, ...overrides }));
}

const HARNESS_DIR = path.join(PACKAGE_ROOT, 'sandbox', 'torch');
/** The sandbox's /tmp, where each job's scratch folder lives (wiped after every job). */
const HARNESS_TMP_BYTES = 4 * 1024 ** 3;
/** The extension build cache keeps shared objects only, up to this many bytes (least recently used go first). */
const BUILD_CACHE_BYTES = 2 * 1024 ** 3;

/** The Python that has torch: ANVIL_PYTHON, else the first of python3 on PATH and Debian's that imports it. */
export function findPython(): string {
  const candidates = [process.env.ANVIL_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);
  for (const p of candidates) {
    try {
      const real = execFileSync(p, ['-c', 'import sys, torch; print(sys.executable)'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
      if (real) return real;
    } catch {
      /* next */
    }
  }
  throw new AnvilError('sandbox_unavailable', 'no Python with torch found (set ANVIL_PYTHON); the torch backend needs torch 2.x (GPU) or 1.13+ (CPU)');
}

export interface GpuInfo {
  index: number;
  uuid: string;
  name: string;
}

/** The host's GPUs, from nvidia-smi; none when it is missing. */
export function listGpus(): GpuInfo[] {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=index,uuid,name', '--format=csv,noheader'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    return out
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [index, uuid, name] = l.split(',').map((x) => x.trim());
        return { index: Number(index), uuid: uuid!, name: name! };
      });
  } catch {
    return [];
  }
}

interface HarnessAnswer {
  id: string;
  result?: Record<string, unknown> & { outcome: Outcome; message?: string; flags?: Flag[] };
  death?: { kind: 'timeout' | 'signal' | 'exit'; stage: string; limitMs?: number; signal?: number; signalName?: string; code?: number };
  forged?: string[];
  harnessError?: string;
  log: string;
  stagesSeen: [string, number][];
  ms: number;
}

interface Health {
  ok: boolean;
  name?: string;
  capability?: string;
  l2Bytes?: number;
  freeBytes?: number;
  totalBytes?: number;
  torch?: string;
  triton?: string;
  cuda?: string;
  peaks?: { bytesPerSecond: number; flopsPerSecond: number };
}

/** Paths and sandbox settings shared by every harness process of an evaluator. */
interface SandboxContext {
  mode: SandboxMode;
  python: string;
  /** System folders outside /usr the Python needs (a venv in /opt, say). */
  extraRo: string[];
}

/** The job folder is read-only to a device harness (the candidate writes only to its tmpfs) and
 * writable to a build sandbox (the build's output goes there). */
function baseBinds(ctx: SandboxContext, workDir: string, writable: boolean): Bind[] {
  return [
    { src: sandboxReachable(HARNESS_DIR), dest: '/anvil/torch' },
    { src: workDir, dest: '/jobs', writable },
    ...ctx.extraRo.map((d) => ({ src: d, dest: d })),
  ];
}

function pythonEnv(ctx: SandboxContext, extra: Record<string, string>): Record<string, string> {
  return {
    // The Python's own folder first: a venv keeps ninja there.
    PATH: `${path.dirname(ctx.python)}:/usr/local/cuda/bin:/usr/local/bin:/usr/bin:/bin`,
    HOME: '/tmp',
    // The sandbox has no passwd entry for its uid; getpass (Triton, cpp_extension) reads these first.
    USER: 'anvil',
    LOGNAME: 'anvil',
    LANG: 'C.UTF-8',
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONUNBUFFERED: '1',
    TRITON_CACHE_DIR: '/tmp/triton',
    OMP_NUM_THREADS: '4',
    // OpenMP's workers sleep when idle instead of spinning: CPU time after a reply is then work.
    OMP_WAIT_POLICY: 'PASSIVE',
    ...extra,
  };
}

/** One warm harness process bound to one device: jobs one at a time, restarted when it dies. */
class DeviceHarness {
  private proc: ChildProcessWithoutNullStreams | null = null;
  private cgroup: JobCgroup | null = null;
  private lines: AsyncIterator<string> | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly workDir: string;
  busy = false;
  jobsDone = 0;
  healthy = true;
  lastError = '';
  health: Health | null = null;

  constructor(
    readonly id: string,
    private readonly ctx: SandboxContext,
    private readonly gpu: GpuInfo | null,
    private readonly slot: number,
    private readonly memoryBytes: number,
    private readonly fresh = false,
  ) {
    // Unique per instance: two evaluators in one process must not share (or wipe) a folder.
    this.workDir = path.join(os.tmpdir(), 'anvil-torch', `${process.pid}-${id}-${randomBytes(3).toString('hex')}`);
  }

  get kind(): 'cuda' | 'cpu' {
    return this.gpu ? 'cuda' : 'cpu';
  }

  private async start(): Promise<void> {
    rmSync(this.workDir, { recursive: true, force: true });
    mkdirSync(this.workDir, { recursive: true, mode: 0o777 });
    const uid = jobUid(this.slot, 'candidate');
    if (uid !== null) execFileSync('chown', [`${uid}:${uid}`, this.workDir]);
    // The driver reads the PCI topology under /sys; the GPU's nodes are bound, the others are not.
    const devices: Bind[] = this.gpu
      ? [
          ...['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools', '/dev/nvidia-modeset', `/dev/nvidia${this.gpu.index}`, '/dev/nvidia-caps']
            .filter((d) => existsSync(d))
            .map((d) => ({ src: d, dest: d, device: true })),
          { src: '/sys', dest: '/sys' },
        ]
      : [];
    // Named after the instance's folder: evaluators in one process must not kill each other's harness.
    this.cgroup = JobCgroup.create(`torch-${path.basename(this.workDir)}`, { memoryBytes: this.memoryBytes, pids: 4096 });
    const argv = launchArgv({
      toolchain: ensureToolchain(),
      mode: this.ctx.mode,
      cgroup: this.cgroup,
      uid,
      // CUDA reserves far more address space than it uses: no RLIMIT_AS; children set their own CPU limit.
      limits: { cpuSeconds: 1_000_000, fileBytes: 1024 ** 3, addressBytes: 2 ** 64 - 1, nproc: 4096, nofile: 4096 },
      env: pythonEnv(this.ctx, { CUDA_VISIBLE_DEVICES: this.gpu ? this.gpu.uuid : '' }),
      binds: [...baseBinds(this.ctx, this.workDir, false), ...devices],
      tmpBytes: HARNESS_TMP_BYTES,
      chdir: '/tmp',
      command: [this.ctx.python, '/anvil/torch/harness.py', 'serve'],
      // The filter that allows Unix sockets: the CUDA driver needs them, and the harness hands runner
      // pipes over a socketpair (see runner.Spawner) on the CPU too.
      gpu: true,
    });
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    this.proc = proc;
    this.lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
    const first = await withTimeout(this.lines.next(), 120_000, 'the harness did not start within 120 s');
    if (first.done) throw new Error(`the harness exited at start: ${stderr.trim()}`);
    const hello = JSON.parse(first.value) as { ready?: boolean };
    if (!hello.ready) throw new Error(`unexpected harness greeting: ${first.value}`);
  }

  private async stop(): Promise<void> {
    this.proc?.kill('SIGKILL');
    this.proc = null;
    this.lines = null;
    await this.cgroup?.killAll();
    await this.cgroup?.destroy();
    this.cgroup = null;
  }

  /** Runs one job with its files (and a built extension, copied to its `ext/`); jobs on one device never overlap. */
  run(job: Record<string, unknown>, files: Record<string, string>, timeoutMs: number, extFrom: string | null = null): Promise<HarnessAnswer> {
    const next = this.queue.then(() => this.runNow(job, files, timeoutMs, extFrom));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async runNow(job: Record<string, unknown>, files: Record<string, string>, timeoutMs: number, extFrom: string | null): Promise<HarnessAnswer> {
    this.busy = true;
    const id = String(job.id);
    const dir = path.join(this.workDir, id);
    try {
      // A harness that died while idle never saw this job: start a new one and run it there.
      if (this.proc && (this.proc.exitCode !== null || this.proc.signalCode !== null)) await this.stop();
      if (!this.proc) await this.start();
      mkdirSync(dir, { recursive: true, mode: 0o777 });
      for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content, { mode: 0o644 });
      // Copied after start(), which empties the folder.
      if (extFrom) copyBuild(extFrom, path.join(dir, 'ext'));
      const uid = jobUid(this.slot, 'candidate');
      if (uid !== null) execFileSync('chown', ['-R', `${uid}:${uid}`, dir]);
      this.proc!.stdin.write(`${JSON.stringify(job)}\n`);
      const line = await withTimeout(this.lines!.next(), timeoutMs, `the harness did not answer within ${timeoutMs} ms`);
      if (line.done) throw new Error('the harness exited');
      const answer = JSON.parse(line.value) as HarnessAnswer;
      if (answer.harnessError) throw new Error(`harness fault: ${answer.harnessError}`);
      if (answer.id !== id) throw new Error(`the harness answered job ${String(answer.id).slice(0, 40)}, not ${id}`);
      this.jobsDone++;
      if (this.fresh) await this.stop();
      return answer;
    } catch (e) {
      await this.stop();
      throw e;
    } finally {
      this.busy = false;
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Checks the device: a small computation verified on the CPU, and its free memory. */
  async check(peaks = false): Promise<Health> {
    try {
      const a = await this.run({ id: `health-${randomBytes(4).toString('hex')}`, phase: 'health', device: this.kind, peaks, deadlinesMs: { default: 60_000 } }, {}, 90_000);
      const h = (a.result?.health ?? { ok: false }) as Health;
      if (!a.result) h.ok = false;
      this.healthy = h.ok;
      this.lastError = h.ok ? '' : `device check failed: ${a.death ? JSON.stringify(a.death) : a.result?.outcome === 'ok' ? 'wrong result' : `${a.result?.message ?? ''} ${String((a.result as { log?: string } | undefined)?.log ?? '').slice(-600)}`} ${a.log.slice(-400)}`;
      if (h.ok) this.health = { ...this.health, ...h, peaks: h.peaks ?? this.health?.peaks };
      return h;
    } catch (e) {
      this.healthy = false;
      this.lastError = `device check failed: ${(e as Error).message}`;
      return { ok: false };
    }
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]).finally(() => clearTimeout(timer));
}

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
  private readonly compileSlots: number;
  private compileRunning = 0;
  private readonly compileWaiters: (() => void)[] = [];
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
    this.compileSlots = opts.compileWorkers ?? Math.max(1, Math.floor(os.availableParallelism() / 4));
    const all = opts.cpu ? [] : listGpus();
    const gpus = opts.gpus ? opts.gpus.map((i) => all.find((g) => g.index === i) ?? fail(`no GPU with index ${i}; this host has ${all.length}`)) : all;
    const base = slotBase;
    slotBase += Math.max(1, gpus.length);
    this.harnesses = gpus.length
      ? gpus.map((g, i) => new DeviceHarness(`gpu${g.index}`, this.ctx, g, base + i, this.baseConfig.memoryBytes, opts.freshProcessPerJob))
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
      { id: 'compile', kind: 'extension builds (CPU)', state: `${this.compileRunning} of ${this.compileSlots} busy`, detail: `${this.compileWaiters.length} waiting` },
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
    return this.harnesses.map((d) => ({ id: d.id, healthy: d.healthy, name: d.health?.name ?? d.kind, error: d.lastError }));
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
    if (!healthy.length) throw new AnvilError('sandbox_unavailable', `no device in rotation: ${this.harnesses.map((d) => d.lastError).join('; ')}`);
    const idle = healthy.find((d) => !d.busy);
    return idle ?? healthy[this.nextDevice++ % healthy.length]!;
  }

  async evaluate(req: EvaluateRequest, opts: EvaluateOptions = {}): Promise<EvalResult> {
    if (req.task.backend !== 'torch') throw new AnvilError('invalid_argument', `task ${req.task.id} is a ${req.task.backend} task; this evaluator runs torch tasks`);
    const task = req.task;
    const config = req.config ? torchConfig({ ...this.baseConfig, ...(req.config as Partial<TorchConfig>) }) : this.baseConfig;
    const stages = new Map<StageName, StageRecord>();
    const { code, base } = takeCode(req, stages);
    const env = () => this.environment();
    if (!code) return assembleResult(base, stages, { outcome: 'no_code', message: 'the reply contains no code block', flags: [] }, env(), this.mode);

    const seed = deriveSeed(this.secret, task, req.seed ?? 0);
    const key = ResultCache.key(task, seed, config, code);
    const hit = this.cache.get(key);
    if (hit) return hit;
    // Identical work in flight at once is one evaluation with one verdict.
    return this.inFlight.run(key, opts.signal, (signal) => this.evaluateNow(task, config, code, seed, key, stages, base, { ...opts, signal }));
  }

  private async evaluateNow(task: TorchTask, config: TorchConfig, code: string, seed: string, key: string, stages: Map<StageName, StageRecord>, base: Pick<EvalResult, 'task' | 'codeHash'>, opts: EvaluateOptions): Promise<EvalResult> {
    const env = () => this.environment();
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
        const built = await this.build(code, config, stages);
        if (built.findings) return assembleResult(base, stages, built.findings, env(), this.mode);
        extDir = built.dir;
      }
      cancelled();
      dev = this.pickDevice();
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
        timingConfig: { warmup: config.warmup, minReps: config.minReps, maxReps: config.maxReps, rseTarget: config.rseTarget, budgetMs: config.timingBudgetMs },
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
      const files: Record<string, string> = { 'candidate.py': code };
      const total = 30_000 + config.compileTimeoutMs + config.correctnessDeadlineMs + config.timingDeadlineMs + 120_000;
      opts.onProgress?.('correctness');
      // A cancelled job runs on to its end or its deadline (the device is exclusive anyway); its result is discarded.
      const answer = await dev.run(job, files, total, extDir);
      cancelled();
      const result = await this.interpret(task, dev, answer, stages, base, config);
      this.cache.set(key, result);
      return result;
    } catch (e) {
      if (e instanceof AnvilError && e.code === 'cancelled') throw e;
      return assembleResult(base, stages, { outcome: 'env_error', message: `evaluation failed: ${(e as Error).message}`, flags: [] }, this.environment(dev), this.mode);
    }
  }

  private async acquireCompile(): Promise<void> {
    if (this.compileRunning < this.compileSlots) {
      this.compileRunning++;
      return;
    }
    await new Promise<void>((resolve) => this.compileWaiters.push(resolve));
  }

  private releaseCompile(): void {
    const next = this.compileWaiters.shift();
    if (next) next();
    else this.compileRunning--;
  }

  /** Builds the candidate's extensions in a fresh sandbox with CUDA hidden; cached by code and device kind. */
  private async build(code: string, config: TorchConfig, stages: Map<StageName, StageRecord>): Promise<{ dir: string; findings?: Findings }> {
    const arch = this.harnesses[0]?.health?.capability ?? 'cpu';
    const h = createHash('sha256').update(code).update(arch).update(this.harnesses[0]?.health?.torch ?? '').digest('hex').slice(0, 24);
    const dir = path.join(cacheRoot(), 'torch-ext', h);
    if (existsSync(path.join(dir, '.complete'))) {
      const now = new Date();
      utimesSync(dir, now, now); // recently used: evicted last
      stages.set('static', { name: 'static', status: 'ok', ms: 0 });
      stages.set('compile', { name: 'compile', status: 'ok', ms: 0, log: 'extension build cached' });
      return { dir };
    }
    await this.acquireCompile();
    const work = `${dir}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
    const cg = JobCgroup.create(`torchcc-${process.pid}-${h.slice(0, 8)}`, { memoryBytes: 8 * 1024 ** 3, pids: 512 });
    try {
      mkdirSync(path.join(work, 'ext'), { recursive: true, mode: 0o777 });
      writeFileSync(path.join(work, 'candidate.py'), code);
      const uid = jobUid(399, 'candidate');
      if (uid !== null) execFileSync('chown', ['-R', `${uid}:${uid}`, work]);
      const job = {
        id: 'build',
        phase: 'compile',
        device: 'cpu',
        candidatePath: '/jobs/candidate.py',
        extDir: '/jobs/ext',
        workDir: '/jobs',
        skipStatic: this.skipStatic,
        torchCudaArchList: arch === 'cpu' ? null : arch,
        deadlinesMs: { start: 30_000, static: 10_000, compile: config.compileTimeoutMs, default: 30_000 },
      };
      const argv = launchArgv({
        toolchain: ensureToolchain(),
        mode: this.mode,
        cgroup: cg,
        uid,
        limits: { cpuSeconds: 3600, fileBytes: 1024 ** 3, addressBytes: 2 ** 64 - 1, nproc: 512, nofile: 1024 },
        env: pythonEnv(this.ctx, { CUDA_VISIBLE_DEVICES: '', MAX_JOBS: '4' }),
        binds: baseBinds(this.ctx, work, true),
        tmpBytes: HARNESS_TMP_BYTES,
        chdir: '/jobs',
        command: ['/bin/sh', '-c', `echo '${JSON.stringify(job)}' | ${this.ctx.python} /anvil/torch/harness.py once`],
      });
      const r = await runCapped(argv, { timeoutMs: config.compileTimeoutMs + 60_000, onTimeout: () => cg?.killAll() });
      const answer = r.stdout.trim() ? (JSON.parse(r.stdout.trim().split('\n').pop()!) as HarnessAnswer) : null;
      if (!answer) throw new Error(`the build sandbox failed: ${r.stderr.slice(-1000)}`);
      const res = answer.result;
      for (const [name, s] of Object.entries((res?.stages ?? {}) as Record<string, { status: 'ok' | 'failed'; ms: number; log?: string }>))
        stages.set(name as StageName, { name: name as StageName, ...s });
      if (answer.death) {
        const timeout = answer.death.kind === 'timeout';
        stages.set('compile', { name: 'compile', status: 'failed', ms: answer.ms, log: answer.log.slice(-4000) || undefined });
        return { dir, findings: { outcome: timeout ? 'timeout' : 'compile_error', message: timeout ? `the extension build did not finish within ${answer.death.limitMs} ms` : `the build process died (${answer.death.signalName ?? `exit ${answer.death.code}`})`, flags: [] } };
      }
      if (res && res.outcome !== 'ok') return { dir, findings: { outcome: res.outcome, message: res.message ?? '', flags: res.flags ?? [] } };
      // Only the shared objects are kept: nothing else the build (or the candidate's code in it) wrote.
      const kept = path.join(work, 'kept');
      keepSharedObjects(path.join(work, 'ext'), kept);
      writeFileSync(path.join(kept, '.complete'), '');
      try {
        renameSync(kept, dir);
      } catch {
        if (!existsSync(path.join(dir, '.complete'))) throw new Error(`cannot place the build in ${dir}`);
      }
      evictBuilds(path.dirname(dir), BUILD_CACHE_BYTES);
      return { dir };
    } finally {
      await cg?.destroy();
      rmSync(work, { recursive: true, force: true });
      this.releaseCompile();
    }
  }

  /** Turns the harness's answer into an EvalResult; checks the device after a crash. */
  private async interpret(task: TorchTask, dev: DeviceHarness, a: HarnessAnswer, stages: Map<StageName, StageRecord>, base: Pick<EvalResult, 'task' | 'codeHash'>, config: TorchConfig): Promise<EvalResult> {
    const env = this.environment(dev);
    const res = a.result;
    for (const [name, s] of Object.entries((res?.stages ?? {}) as Record<string, { status: 'ok' | 'failed'; ms: number; log?: string }>))
      if (!(stages.get(name as StageName)?.status === 'ok' && name === 'compile' && s.status === 'ok'))
        stages.set(name as StageName, { name: name as StageName, ...s, ...(s.log ? { log: s.log.slice(-4000) } : {}) });
    const correctness = summarizeCorrectness((res?.correctness as RawCheck | undefined) ?? (res?.trials ? (res as unknown as RawCheck) : undefined));
    const finish = (f: Findings) => assembleResult(base, stages, { correctness, ...f }, env, this.mode);
    if (a.forged?.length) {
      return finish({ outcome: 'hack_detected', message: 'the candidate wrote on the harness result channel', flags: [{ kind: 'forged_reply', evidence: `lines without the job's nonce on the result pipe: ${a.forged.map((l) => JSON.stringify(l.slice(0, 80))).join(', ')}` }] });
    }
    const suspect = !!a.death || (res?.outcome === 'runtime_error' && (res as { deviceSuspect?: boolean }).deviceSuspect === true);
    if (suspect && dev.kind === 'cuda') await dev.check();
    if (a.death) {
      const stage = a.death.stage as StageName;
      if (STAGE_NAMES.has(stage)) stages.set(stage, { name: stage, status: 'failed', ms: a.ms, log: a.log.slice(-4000) || undefined });
      if (a.death.kind === 'timeout') return finish({ outcome: 'timeout', message: `the ${a.death.stage} stage did not finish within ${a.death.limitMs} ms; the process was killed`, flags: [] });
      return finish({ outcome: 'runtime_error', message: `the candidate's process died (${a.death.signalName ?? `exit code ${a.death.code}`}) in the ${a.death.stage} stage`, flags: [] });
    }
    if (!res) throw new Error('the harness gave no result');
    if (res.outcome !== 'ok') {
      const failing = ([...stages.values()].find((s) => s.status === 'failed') ?? null) as StageRecord | null;
      if (failing && !failing.log && (res as { log?: string }).log) failing.log = String((res as { log?: string }).log).slice(-4000);
      if (!failing && res.outcome === 'runtime_error') stages.set('correctness', { name: 'correctness', status: 'failed', ms: a.ms, log: String((res as { log?: string }).log ?? a.log).slice(-4000) });
      return finish({ outcome: res.outcome, message: res.message ?? '', flags: res.flags ?? [] });
    }
    return this.measure(task, dev, res as unknown as RunResult, finish, config);
  }

  private measure(task: TorchTask, dev: DeviceHarness, res: RunResult, finish: (f: Findings) => EvalResult, config: TorchConfig): EvalResult {
    const flags: Flag[] = [];
    const peaks = dev.health?.peaks;
    const shapes: ShapeTiming[] = res.shapes.map((s) => {
      const solMs = peaks ? Math.max(s.bytes / peaks.bytesPerSecond, (s.flops ?? 0) / peaks.flopsPerSecond) * 1e3 : null;
      if (solMs !== null && s.candidate.medianMs < config.solMargin * solMs)
        flags.push({ kind: 'faster_than_light', evidence: `median ${s.candidate.medianMs.toFixed(4)} ms is below ${config.solMargin} × the speed-of-light time ${solMs.toFixed(4)} ms on this device` });
      return { shape: s.shape, candidate: s.candidate, reference: s.reference, speedup: s.pairedSpeedup, solMs, splitMs: s.splitMs };
    });
    const speedup = geomean(shapes.map((s) => s.speedup));
    const p = res.profile;
    const share = p.totalMs > 0 ? Math.min(1, p.ownMs / p.totalMs) : 0;
    if (p.ownKernels.length === 0)
      flags.push({ kind: 'no_own_kernels', evidence: `none of the ${p.device ? 'device kernels' : 'time'} profiled came from the candidate's own kernels (${p.kernels.map((k) => k.name).join(', ') || 'nothing ran'})${p.launchedTriton.length ? '' : '; no Triton kernel was launched'}` });
    else if (share < task.minOwnShare)
      flags.push({ kind: 'framework_offload', evidence: `only ${(100 * share).toFixed(1)}% of the candidate's ${p.device ? 'device' : 'CPU'} time is in its own kernels (${p.ownKernels.join(', ')}); at least ${(100 * task.minOwnShare).toFixed(0)}% must be. Largest: ${p.kernels.map((k) => `${k.name} ${k.ms} ms`).join(', ')}` });
    const timing = { shapes, candidateMs: geomean(shapes.map((s) => s.candidate.medianMs)), referenceMs: geomean(shapes.map((s) => s.reference.medianMs)) };
    const profile = { libMs: Math.max(0, p.totalMs - p.ownMs), candidateMs: p.totalMs, share, measured: true };
    if (flags.length) return finish({ outcome: 'hack_detected', message: flags.map((f) => f.evidence).join('; '), flags, timing, profile, speedup, profileShare: share });
    return finish({ outcome: 'ok', message: `correct; speedup ${speedup.toFixed(2)}×`, flags, timing, profile, speedup, profileShare: share });
  }

  async close(): Promise<void> {
    clearInterval(this.recheck);
    await Promise.all(this.harnesses.map((d) => d.close()));
  }
}

const STAGE_NAMES = new Set<string>(['extract', 'static', 'compile', 'correctness', 'timing', 'profile']);

interface RunResult {
  shapes: { shape: number; candidate: TimingStats; reference: TimingStats; pairedSpeedup: number; bytes: number; flops?: number | null; splitMs?: number }[];
  profile: { ownMs: number; totalMs: number; ownKernels: string[]; kernels: { name: string; ms: number }[]; launchedTriton: string[]; device: boolean };
}

interface RawCheck {
  trials?: TrialRecord[];
  trialsPassed?: number;
  trialsTotal?: number;
  maxAbsErr?: number;
  maxRelErr?: number;
  failedVisible?: boolean;
}

function summarizeCorrectness(c: RawCheck | undefined): EvalResult['correctness'] {
  if (!c?.trials) return null;
  const firstFail = c.trials.find((t) => !t.passed);
  return {
    trialsPassed: c.trials.filter((t) => t.passed).length,
    trialsTotal: c.trialsTotal ?? c.trials.length,
    maxAbsErr: c.maxAbsErr ?? null,
    maxRelErr: c.maxRelErr ?? null,
    trials: c.trials,
    failedOnVisibleShape: firstFail ? firstFail.visible : (c.failedVisible ?? null),
  };
}

/** Copies `<name>/<name>.so` files (what load_inline imports) from a build folder, and nothing else. */
function keepSharedObjects(from: string, to: string): void {
  mkdirSync(to, { recursive: true, mode: 0o755 });
  for (const name of existsSync(from) ? readdirSync(from) : []) {
    const so = path.join(from, name, `${name}.so`);
    if (!/^[\w.-]+$/.test(name) || !lstatSync(path.join(from, name)).isDirectory() || !existsSync(so) || !lstatSync(so).isFile()) continue;
    mkdirSync(path.join(to, name), { mode: 0o755 });
    copyFileSync(so, path.join(to, name, `${name}.so`));
  }
}

/** Removes the least recently used builds until the cache holds at most `cap` bytes. */
function evictBuilds(root: string, cap: number): void {
  const builds = readdirSync(root)
    .filter((d) => !d.includes('.tmp-'))
    .map((d) => {
      const dir = path.join(root, d);
      const bytes = readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .reduce((n, e) => n + statSync(path.join(e.parentPath ?? e.path, e.name)).size, 0);
      return { dir, bytes, used: statSync(dir).mtimeMs };
    })
    .sort((a, b) => b.used - a.used);
  let total = 0;
  for (const b of builds) {
    total += b.bytes;
    if (total > cap) rmSync(b.dir, { recursive: true, force: true });
  }
}

function copyBuild(from: string, to: string): void {
  mkdirSync(to, { recursive: true, mode: 0o777 });
  for (const entry of readdirSync(from)) cpSync(path.join(from, entry), path.join(to, entry), { recursive: true });
}

function fail(message: string): never {
  throw new AnvilError('invalid_argument', message);
}

/** The torch harness's processes: one warm, sandboxed harness per device (torch
 * imported, CUDA not initialized) that forks a fresh child per job and runs one
 * job at a time, so measurements never overlap on a device; restarted when it
 * dies or answers out of protocol. Its answers are parsed with torch-answers.ts. */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { z } from 'zod';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import { JobCgroup } from './cgroup.js';
import { AnvilError } from './errors.js';
import { jobUid, launchArgv, type Bind, type SandboxMode } from './isolation.js';
import { ensureToolchain, sandboxReachable } from './toolchain.js';
import { GreetingSchema, HealthAnswerSchema, parseAnswer, type Health } from './torch-answers.js';

const HARNESS_DIR = path.join(PACKAGE_ROOT, 'sandbox', 'torch');
/** The sandbox's /tmp, where each job's scratch folder lives (wiped after every job). */
export const HARNESS_TMP_BYTES = 4 * 1024 ** 3;

/** The Python that has torch: ANVIL_PYTHON, else the first of python3 on PATH and Debian's that imports it. */
export function findPython(): string {
  const candidates = [process.env.ANVIL_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);
  for (const p of candidates) {
    try {
      const real = execFileSync(p, ['-c', 'import sys, torch; print(sys.executable)'], {
        stdio: ['ignore', 'pipe', 'ignore'],
      })
        .toString()
        .trim();
      if (real) return real;
    } catch {
      /* next */
    }
  }
  throw new AnvilError(
    'sandbox_unavailable',
    'no Python with torch found (set ANVIL_PYTHON); the torch backend needs torch 2.x (GPU) or 1.13+ (CPU)',
  );
}

export interface GpuInfo {
  index: number;
  uuid: string;
  name: string;
}

/** The host's GPUs, from nvidia-smi; none when it is missing. */
export function listGpus(): GpuInfo[] {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=index,uuid,name', '--format=csv,noheader'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    }).toString();
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

/** Paths and sandbox settings shared by every harness process of an evaluator. */
export interface SandboxContext {
  mode: SandboxMode;
  python: string;
  /** System folders outside /usr the Python needs (a venv in /opt, say). */
  extraRo: string[];
}

/** The job folder is read-only to a device harness (the candidate writes only to its tmpfs) and
 * writable to a build sandbox (the build's output goes there). */
export function baseBinds(ctx: SandboxContext, workDir: string, writable: boolean): Bind[] {
  return [
    { src: sandboxReachable(HARNESS_DIR), dest: '/anvil/torch' },
    { src: workDir, dest: '/jobs', writable },
    ...ctx.extraRo.map((d) => ({ src: d, dest: d })),
  ];
}

export function pythonEnv(ctx: SandboxContext, extra: Record<string, string>): Record<string, string> {
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
export class DeviceHarness {
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
          ...[
            '/dev/nvidiactl',
            '/dev/nvidia-uvm',
            '/dev/nvidia-uvm-tools',
            '/dev/nvidia-modeset',
            `/dev/nvidia${this.gpu.index}`,
            '/dev/nvidia-caps',
          ]
            .filter((d) => existsSync(d))
            .map((d) => ({ src: d, dest: d, device: true })),
          { src: '/sys', dest: '/sys' },
        ]
      : [];
    // Named after the instance's folder: evaluators in one process must not kill each other's harness.
    this.cgroup = JobCgroup.create(`torch-${path.basename(this.workDir)}`, {
      memoryBytes: this.memoryBytes,
      pids: 4096,
    });
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
    let hello: unknown;
    try {
      hello = JSON.parse(first.value);
    } catch {
      /* not a greeting: said below */
    }
    if (!GreetingSchema.safeParse(hello).success)
      throw new Error(`unexpected harness greeting: ${first.value.slice(0, 200)}`);
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
  run<S extends z.ZodType<{ id: string }>>(
    schema: S,
    job: Record<string, unknown>,
    files: Record<string, string>,
    timeoutMs: number,
    extFrom: string | null = null,
  ): Promise<z.infer<S>> {
    const next = this.queue.then(() => this.runNow(schema, job, files, timeoutMs, extFrom));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async runNow<S extends z.ZodType<{ id: string }>>(
    schema: S,
    job: Record<string, unknown>,
    files: Record<string, string>,
    timeoutMs: number,
    extFrom: string | null,
  ): Promise<z.infer<S>> {
    this.busy = true;
    const id = String(job.id);
    const dir = path.join(this.workDir, id);
    try {
      // A harness that died while idle never saw this job: start a new one and run it there.
      if (this.proc && (this.proc.exitCode !== null || this.proc.signalCode !== null)) await this.stop();
      if (!this.proc) await this.start();
      mkdirSync(dir, { recursive: true, mode: 0o777 });
      for (const [name, content] of Object.entries(files))
        writeFileSync(path.join(dir, name), content, { mode: 0o644 });
      // Copied after start(), which empties the folder.
      if (extFrom) copyBuild(extFrom, path.join(dir, 'ext'));
      const uid = jobUid(this.slot, 'candidate');
      if (uid !== null) execFileSync('chown', ['-R', `${uid}:${uid}`, dir]);
      this.proc!.stdin.write(`${JSON.stringify(job)}\n`);
      const line = await withTimeout(
        this.lines!.next(),
        timeoutMs,
        `the harness did not answer within ${timeoutMs} ms`,
      );
      if (line.done) throw new Error('the harness exited');
      // A fault, or an answer out of protocol, throws: the harness is restarted below.
      const answer = parseAnswer(schema, line.value);
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
      const a = await this.run(
        HealthAnswerSchema,
        {
          id: `health-${randomBytes(4).toString('hex')}`,
          phase: 'health',
          device: this.kind,
          peaks,
          deadlinesMs: { default: 60_000 },
        },
        {},
        90_000,
      );
      const h: Health = a.result?.health ?? { ok: false };
      if (!a.result) h.ok = false;
      this.healthy = h.ok;
      this.lastError = h.ok
        ? ''
        : `device check failed: ${a.death ? JSON.stringify(a.death) : a.result?.outcome === 'ok' ? 'wrong result' : `${a.result?.message ?? ''} ${(a.result?.log ?? '').slice(-600)}`} ${a.log.slice(-400)}`;
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
  return Promise.race([
    p,
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
  ]).finally(() => clearTimeout(timer));
}

function copyBuild(from: string, to: string): void {
  mkdirSync(to, { recursive: true, mode: 0o777 });
  for (const entry of readdirSync(from)) cpSync(path.join(from, entry), path.join(to, entry), { recursive: true });
}

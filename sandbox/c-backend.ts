/** The C backend's stages as they run in a pool worker: compile (sandboxed),
 * the object-file checks, then the judge's correctness and timing phases.
 * Each function takes plain data and returns plain data, so it can cross the
 * worker boundary; the evaluator assembles the EvalResult. */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CTask as Task } from '../tasks/loader.js';
import { argValues } from '../tasks/loader.js';
import { AnvilError } from '../contracts/errors.js';
import { JobCgroup } from './cgroup.js';
import { ALLOWED_HEADERS } from '../contracts/c-headers.js';
import type { EvalConfig } from './config.js';
import { launchArgv, jobUid, startedCommand, type Bind, type SandboxMode } from './isolation.js';
import { runCapped } from './process.js';
export type { JudgeOutput } from './judge-output.js';
import type { Flag, Outcome, StageRecord } from './result.js';
import { ElfError, readElf } from './elf.js';
import { parseJudgeOutput, type JudgeOutput } from './judge-output.js';
import {
  checkDependencies,
  checkExecutable,
  checkObject,
  checkPreprocessed,
  checkSymbols,
  parseDependencies,
  type StaticFinding,
} from './static-check.js';
import { CANDIDATE_CFLAGS, ensureTaskBuild, ensureToolchain, type TaskBuild, type Toolchain } from './toolchain.js';

export interface JobRef {
  jobId: string;
  slot: number;
  mode: SandboxMode;
  config: EvalConfig;
  task: Task;
  skipStatic: boolean;
  /** Time under SCHED_FIFO (where the host allows it): see docs/c-judge.md. */
  realtime?: boolean;
}

export interface StageOutcome {
  stages: StageRecord[];
  /** Set when a stage failed; absent when every stage passed. */
  outcome?: Outcome;
  message?: string;
  flags: Flag[];
}

export interface PrepareResult extends StageOutcome {
  check?: JudgeOutput;
  /** The library ops (lib_*) the candidate's object file references, offered or not. */
  libOpsUsed: string[];
}

export interface TimeResult extends StageOutcome {
  time?: JudgeOutput;
}

const LOG_LIMIT = 4000;

export function jobDir(jobId: string): string {
  return path.join(os.tmpdir(), 'anvil-jobs', jobId);
}

/** The judge's own folder: its specs hold the seed and every hidden shape, so
 * it is never bound into a sandbox. */
function judgeDir(jobId: string): string {
  return path.join(os.tmpdir(), 'anvil-jobs', `${jobId}.judge`);
}

function truncate(s: string, n = LOG_LIMIT): string {
  return s.length <= n ? s : `${s.slice(0, n)}\n[... ${s.length - n} more characters]`;
}

function limits(cfg: EvalConfig, fileBytes: number) {
  return {
    cpuSeconds: cfg.cpuSeconds,
    fileBytes,
    addressBytes: cfg.memoryBytes * 4 + 8 * 1024 ** 3,
    nproc: cfg.pids,
    nofile: 256,
  };
}

function baseEnv(cfg: EvalConfig): Record<string, string> {
  return { PATH: '/usr/bin:/bin', HOME: '/tmp', LANG: 'C', OMP_NUM_THREADS: String(cfg.threads) };
}

/** Writes the candidate, compiles it in the sandbox, checks its symbols and links the runner. */
export async function prepare(job: JobRef, code: string, seed: string): Promise<PrepareResult> {
  const stages: StageRecord[] = [];
  const dir = jobDir(job.jobId);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  writeFileSync(path.join(dir, 'candidate.c'), code);
  const uid = jobUid(job.slot, 'candidate');
  if (uid !== null) chownSync(dir, uid, uid);

  const compiled = await compile(job, dir, uid);
  stages.push(compiled.stage);
  const libOpsUsed = compiled.libOpsUsed;
  if (compiled.failure) return { stages, libOpsUsed, ...compiled.failure };

  const check = await runJudge(job, 'check', seed);
  const ok = check.outcome === 'ok';
  stages.push({
    name: 'correctness',
    status: ok ? 'ok' : 'failed',
    ms: check.ms,
    log: check.candidateLog ? truncate(check.candidateLog) : undefined,
  });
  if (!ok)
    return { stages, libOpsUsed, outcome: check.outcome, message: check.message, flags: check.flags ?? [], check };
  return { stages, libOpsUsed, flags: check.flags ?? [], check };
}

export async function time(job: JobRef, seed: string): Promise<TimeResult> {
  const out = await runJudge(job, 'time', seed);
  const ok = out.outcome === 'ok';
  const stages: StageRecord[] = [{ name: 'timing', status: ok ? 'ok' : 'failed', ms: out.ms }];
  if (!ok) return { stages, outcome: out.outcome, message: out.message, flags: out.flags ?? [], time: out };
  return { stages, flags: out.flags ?? [], time: out };
}

export function cleanup(jobId: string): void {
  rmSync(jobDir(jobId), { recursive: true, force: true });
  rmSync(judgeDir(jobId), { recursive: true, force: true });
}

/** Where the harness's headers sit, inside the sandbox and (unsandboxed) on the host. */
function harnessHeaders(tc: Toolchain, tb: TaskBuild): string[] {
  return [
    '/anvil/lib/include/anvil_lib.h',
    '/anvil/lib/include/anvil_abi.h',
    '/anvil/task/task.h',
    path.join(tc.includeDir, 'anvil_lib.h'),
    path.join(tc.includeDir, 'anvil_abi.h'),
    tb.header,
  ];
}

const dependencyCache = new Map<string, ReadonlySet<string>>();

/** Every file the allowed headers read, with and without _GNU_SOURCE, as the
 * preprocessor reports it: the only files a candidate's preprocessing may read. */
function allowedDependencies(tc: Toolchain, tb: TaskBuild): ReadonlySet<string> {
  const hit = dependencyCache.get(tb.dir);
  if (hit) return hit;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-deps-'));
  const files = new Set(harnessHeaders(tc, tb));
  try {
    const probe = path.join(dir, 'probe.c');
    writeFileSync(probe, [...ALLOWED_HEADERS.map((h) => `#include <${h}>`), '#include "anvil_lib.h"', ''].join('\n'));
    for (const extra of [[], ['-D_GNU_SOURCE']]) {
      const deps = path.join(dir, 'probe.d');
      execFileSync('gcc', [
        ...CANDIDATE_CFLAGS,
        ...extra,
        '-include',
        tb.header,
        '-I',
        tc.includeDir,
        '-E',
        '-MD',
        '-MF',
        deps,
        probe,
        '-o',
        '/dev/null',
      ]);
      for (const f of parseDependencies(readFileSync(deps, 'utf8'))) if (f !== probe) files.add(f);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  dependencyCache.set(tb.dir, files);
  return files;
}

/** The checks on what was built: the files read, the preprocessed text, the object, its symbols. */
function checkBuild(job: JobRef, dir: string, tc: Toolchain, tb: TaskBuild): StaticFinding | null {
  const read = (f: string) => readFileSync(path.join(dir, f), 'utf8');
  const own = job.mode === 'bwrap' ? '/job/candidate.c' : path.join(dir, 'candidate.c');
  const deps = parseDependencies(read('candidate.d')).map((f) =>
    path.isAbsolute(f) ? path.normalize(f) : path.join(job.mode === 'bwrap' ? '/job' : dir, f),
  );
  let elf;
  try {
    elf = readElf(readFileSync(path.join(dir, 'candidate.o')));
  } catch (e) {
    if (e instanceof ElfError)
      return { outcome: 'compile_error', message: `the object file cannot be read: ${e.message}`, flags: [] };
    throw e;
  }
  return (
    checkDependencies(deps, allowedDependencies(tc, tb), own) ??
    checkPreprocessed(read('candidate.i'), 'candidate.c') ??
    checkObject(elf, read('candidate.dis')) ??
    checkSymbols(read('candidate.sym'), job.task.libOps, tc.librarySymbols)
  );
}

interface CompileResult {
  stage: StageRecord;
  libOpsUsed: string[];
  failure?: { outcome: Outcome; message: string; flags: Flag[] };
}

/** The object is compiled from the source itself, never from the preprocessed
 * text (whose line markers a compiler would believe); -MD lists the files read. */
function compileScript(): string {
  const flags = [...CANDIDATE_CFLAGS, '-include', '/anvil/task/task.h', '-I', '/anvil/lib/include'].join(' ');
  return [
    `gcc ${flags} -E -MD -MF candidate.d candidate.c -o candidate.i`,
    `gcc ${flags} -c candidate.c -o candidate.o`,
    'nm -P candidate.o > candidate.sym',
    'objdump -d -w --no-show-raw-insn candidate.o > candidate.dis',
  ].join(' && ');
}

/** Runs one command of the build in the job's sandbox. A sandbox that did not
 * start throws (the environment's failure), whatever its stderr reads. */
function buildSandbox(
  job: JobRef,
  dir: string,
  uid: number | null,
  cg: JobCgroup | null,
  tc: Toolchain,
  tb: TaskBuild,
) {
  const binds: Bind[] = [
    { src: dir, dest: '/job', writable: true },
    { src: tc.dir, dest: '/anvil/lib' },
    // The task's header and glue only: its folder also holds the reference.
    { src: tb.header, dest: '/anvil/task/task.h' },
    { src: tb.glueObject, dest: '/anvil/task/glue.o' },
  ];
  return async (command: string[], ms: number, what: string) => {
    const spec = {
      toolchain: tc,
      mode: job.mode,
      cgroup: cg,
      uid,
      binds,
      chdir: '/job',
      command: startedCommand(command),
    };
    const argv = launchArgv({ ...spec, limits: limits(job.config, 256 * 1024 ** 2), env: baseEnv(job.config) });
    const r = await runCapped(argv, { timeoutMs: ms, onTimeout: () => cg?.killAll(), started: true });
    if (!r.timedOut && r.code !== 0 && !r.started)
      throw new AnvilError('sandbox_failed', `sandbox failed to start the ${what}: ${r.stderr.trim()}`);
    return r;
  };
}

async function compile(job: JobRef, dir: string, uid: number | null): Promise<CompileResult> {
  const tc = ensureToolchain();
  const tb = ensureTaskBuild(job.task);
  const cfg = job.config;
  const t0 = performance.now();
  const cg = JobCgroup.create(`${job.jobId}-cc`, { memoryBytes: cfg.memoryBytes, pids: cfg.pids });
  const run = buildSandbox(job, dir, uid, cg, tc, tb);
  try {
    const deadline = t0 + cfg.compileTimeoutMs;
    const r = await run(['/bin/sh', '-c', compileScript()], cfg.compileTimeoutMs, 'compiler');
    const log = truncate(`${r.stdout}${r.stderr}`.trim());
    const stage = (status: 'ok' | 'failed'): StageRecord => ({
      name: 'compile',
      status,
      ms: performance.now() - t0,
      log: log || undefined,
    });
    if (r.timedOut)
      return {
        stage: stage('failed'),
        libOpsUsed: [],
        failure: {
          outcome: 'timeout',
          message: `compilation did not finish within ${cfg.compileTimeoutMs} ms`,
          flags: [],
        },
      };
    if (r.code !== 0) {
      const oom = cg?.oomKilled() ? ' (the compiler ran out of memory)' : '';
      return {
        stage: stage('failed'),
        libOpsUsed: [],
        failure: { outcome: 'compile_error', message: `the compiler reported errors${oom}`, flags: [] },
      };
    }
    const symbols = readFileSync(path.join(dir, 'candidate.sym'), 'utf8');
    // Every library op the object references counts toward the profile, offered or not.
    const libOpsUsed = [...symbols.matchAll(/^(lib_\w+) +U/gm)].map((m) => m[1]!);
    const finding = job.skipStatic ? null : checkBuild(job, dir, tc, tb);
    if (finding) return { stage: stage('failed'), libOpsUsed, failure: finding };
    const linkCmd = [
      '/usr/bin/gcc',
      '-fopenmp',
      '-o',
      'runner',
      '/anvil/lib/runner.o',
      '/anvil/task/glue.o',
      '/anvil/lib/anvil_lib.o',
      'candidate.o',
      '-lm',
    ];
    const l = await run(linkCmd, Math.max(1000, deadline - performance.now()), 'linker');
    if (l.timedOut || l.code !== 0) {
      return {
        stage: { ...stage('failed'), log: truncate(`${log}\n${l.stdout}${l.stderr}`.trim()) },
        libOpsUsed,
        failure: {
          outcome: l.timedOut ? 'timeout' : 'compile_error',
          message: 'linking failed (a function is declared but not defined?)',
          flags: [],
        },
      };
    }
    const linked = job.skipStatic ? null : checkExecutable(readElf(readFileSync(path.join(dir, 'runner'))));
    if (linked) return { stage: stage('failed'), libOpsUsed, failure: linked };
    return { stage: stage('ok'), libOpsUsed };
  } finally {
    await cg?.destroy();
  }
}

interface JudgeRun extends JudgeOutput {
  ms: number;
  candidateLog?: string;
}

const SIGNAL_NAMES: Record<number, string> = {
  4: 'illegal instruction (SIGILL)',
  6: 'aborted (SIGABRT)',
  7: 'bus error (SIGBUS)',
  8: 'arithmetic exception (SIGFPE)',
  9: 'killed (SIGKILL)',
  11: 'segmentation fault (SIGSEGV)',
  24: 'CPU time limit exceeded (SIGXCPU)',
  25: 'output size limit exceeded (SIGXFSZ)',
  31: 'bad system call (SIGSYS)',
};

/** Turns the judge's "signal 11" into words, with what the cgroup saw. */
function explainDeath(death: string, oom: boolean, cfg: EvalConfig): { outcome?: Outcome; text: string } {
  const m = /^signal (\d+)/.exec(death);
  if (!m) return { text: death.startsWith('exit') ? `exited with status ${death.slice(5)}` : death };
  const sig = Number(m[1]);
  if (sig === 9 && oom) return { text: `ran out of memory (limit ${Math.round(cfg.memoryBytes / 1024 ** 2)} MiB)` };
  if (sig === 24) return { outcome: 'timeout', text: SIGNAL_NAMES[24]! };
  if (sig === 25) return { text: `wrote more than ${cfg.outputBytes} bytes of output (SIGXFSZ)` };
  return { text: SIGNAL_NAMES[sig] ?? `signal ${sig}` };
}

async function runJudge(job: JobRef, phase: 'check' | 'time', seed: string): Promise<JudgeRun> {
  const tc = ensureToolchain();
  const tb = ensureTaskBuild(job.task);
  const cfg = job.config;
  const candLog = path.join(jobDir(job.jobId), `${phase}.log`);
  const cand = JobCgroup.create(`${job.jobId}-${phase}`, { memoryBytes: cfg.memoryBytes, pids: cfg.pids });
  const ref = JobCgroup.create(`${job.jobId}-${phase}-ref`, { memoryBytes: cfg.memoryBytes * 2, pids: cfg.pids });
  const deadlineMs = phase === 'check' ? cfg.correctnessDeadlineMs : cfg.timingDeadlineMs;
  mkdirSync(judgeDir(job.jobId), { recursive: true, mode: 0o700 });
  const specFile = path.join(judgeDir(job.jobId), `${phase}.spec`);
  writeFileSync(specFile, `${judgeSpec(job, phase, seed, { tc, tb, deadlineMs, candLog, cand, ref }).join('\n')}\n`, {
    mode: 0o600,
  });
  // The judge enforces the phase deadline itself, once it holds the host's timing
  // lock; this outer limit only catches a judge that failed to.
  const res = await runCapped([tc.judge, specFile], {
    timeoutMs: deadlineMs + 120_000,
    maxOutput: 1024 * 1024,
    onTimeout: async () => {
      await cand?.killAll();
      await ref?.killAll();
    },
  });
  try {
    return judgeRun(res, phase, { cfg, candLog, oomKilled: () => cand?.oomKilled() ?? false });
  } finally {
    await cand?.destroy();
    await ref?.destroy();
  }
}

/** The judge's spec file: the phase, the measurement settings, the task's arguments and shapes, and both runners' command lines. */
function judgeSpec(
  job: JobRef,
  phase: 'check' | 'time',
  seed: string,
  o: {
    tc: Toolchain;
    tb: TaskBuild;
    deadlineMs: number;
    candLog: string;
    cand: JobCgroup | null;
    ref: JobCgroup | null;
  },
): string[] {
  const cfg = job.config;
  const runnerArgv = (role: 'candidate' | 'reference', cg: JobCgroup | null, src: string) =>
    launchArgv({
      toolchain: o.tc,
      mode: job.mode,
      cgroup: cg,
      uid: jobUid(job.slot, role),
      limits: limits(cfg, cfg.outputBytes),
      env: baseEnv(cfg),
      binds: [{ src, dest: '/job' }],
      chdir: '/job',
      command: ['/job/runner'],
    });
  const shapes =
    phase === 'check'
      ? job.task.correctness.map((c) => ({ visible: c.visible, values: argValues(job.task, c.params) }))
      : job.task.timing.map((p) => ({ visible: false, values: argValues(job.task, p) }));
  const { cand, ref } = o;
  const tolerance = phase === 'check' ? job.task.tolerance : (job.task.timingTolerance ?? job.task.tolerance);
  const lines = [
    `phase ${phase}`,
    `seed ${seed}`,
    `atol ${tolerance.atol}`,
    `rtol ${tolerance.rtol}`,
    `trials ${cfg.trials}`,
    `call_timeout_ms ${cfg.callTimeoutMs}`,
    `deadline_ms ${o.deadlineMs}`,
    `budget_ms ${cfg.timingBudgetMs}`,
    `min_reps ${cfg.minReps}`,
    `max_reps ${cfg.maxReps}`,
    `rse_target ${cfg.rseTarget}`,
    `bwrap ${job.mode === 'bwrap' ? 1 : 0}`,
    // bwrap's deny list, then the runner's own allow-list.
    `expect_filters ${job.mode === 'bwrap' ? 2 : 1}`,
    `realtime ${job.realtime === false ? 0 : 1}`,
    `host_lock ${path.join(os.tmpdir(), 'anvil-timing.lock')}`,
    ...job.task.args.map((a) => {
      const gen = a.kind === 'in' || a.kind === 'f32' ? `${a.gen.dist} ${a.gen.a} ${a.gen.b}` : 'none 0 0';
      return `arg ${a.kind} ${gen}`;
    }),
    ...shapes.map((s) => `shape ${s.visible ? 1 : 0} ${s.values.join(' ')}`),
    `cand_log ${o.candLog}`,
    ...(cand
      ?.procsFiles()
      .slice(0, 1)
      .map((f) => `cand_procs ${f}`) ?? []),
    ...(ref
      ?.procsFiles()
      .slice(0, 1)
      .map((f) => `ref_procs ${f}`) ?? []),
    ...(cand?.freezeFile() ? [`cand_freeze ${cand.freezeFile()}`] : []),
    ...(ref?.freezeFile() ? [`ref_freeze ${ref.freezeFile()}`] : []),
  ];
  const c = runnerArgv('candidate', cand, jobDir(job.jobId));
  const r = runnerArgv('reference', ref, o.tb.referenceDir);
  lines.push(`cand_argv ${c.length}`, ...c, `ref_argv ${r.length}`, ...r);
  return lines;
}

/** The judge's run as the backend reports it: its answer parsed at the boundary (an
 * answer that does not parse, or none, is an env_error: the judge's failure, not the
 * candidate's), a process's death in words, and what the candidate printed that feedback may show. */
export function judgeRun(
  res: { stdout: string; stderr: string; timedOut: boolean; ms: number },
  phase: 'check' | 'time',
  o: { cfg: EvalConfig; candLog: string; oomKilled: () => boolean },
): JudgeRun {
  if (res.timedOut) return { phase, outcome: 'env_error', message: 'the judge did not finish in time', ms: res.ms };
  const parsed = parseJudgeOutput(res.stdout);
  if (!parsed.ok) {
    // Not JSON: the judge died (its stderr says why). JSON of another shape: a judge this backend does not know.
    const why = parsed.json
      ? `the judge's answer is malformed: ${truncate(parsed.problems, 500)}`
      : `the judge failed: ${truncate(res.stderr || res.stdout, 500)}`;
    return { phase, outcome: 'env_error', message: why, ms: res.ms };
  }
  const out = parsed.output;
  const run: JudgeRun = { ...out, ms: res.ms };
  if (out.death && out.outcome === 'env_error') run.message = `${out.message}: ${out.death}`;
  else if (out.death && out.death !== 'timeout') {
    const why = explainDeath(out.death, o.oomKilled(), o.cfg);
    if (why.outcome) run.outcome = why.outcome;
    run.message = out.message?.replace(/process ended \([^)]*\)/, `process ended: ${why.text}`) ?? why.text;
  }
  if (phase === 'check' && existsSync(o.candLog)) {
    // Only what the first trial (a shown shape) printed may reach feedback.
    const all = readFileSync(o.candLog, 'utf8');
    const shown = out.failedTrial === 0 ? all : all.slice(0, out.logBytesFirstTrial ?? 0);
    if (shown) run.candidateLog = shown;
  }
  return run;
}

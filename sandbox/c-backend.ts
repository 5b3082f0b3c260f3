/** The C backend's stages as they run in a pool worker: compile (sandboxed),
 * the object-file checks, then the judge's correctness and timing phases (c-judge.ts).
 * Each function takes plain data and returns plain data, so it can cross the
 * worker boundary; the evaluator assembles the EvalResult. */
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AnvilError } from '../contracts/errors.js';
import { JobCgroup } from './cgroup.js';
import { ALLOWED_HEADERS } from '../contracts/c-headers.js';
import { baseEnv, jobDir, judgeDir, limits, truncate, type JobRef } from './c-job.js';
import { runJudge } from './c-judge.js';
import type { EvalConfig } from './config.js';
import { launchArgv, jobUid, startedCommand, type Bind } from './isolation.js';
import { runCapped } from './process.js';
export type { JobRef } from './c-job.js';
export { judgeRun } from './c-judge.js';
export type { JudgeOutput } from './judge-output.js';
import type { Flag, Outcome, StageRecord } from './result.js';
import { ElfError, readElf } from './elf.js';
import { timingFailureLog, type JudgeOutput } from './judge-output.js';
import {
  checkDependencies,
  checkExecutable,
  checkObject,
  checkPreprocessed,
  checkSymbols,
  failClosed,
  parseDependencies,
  type StaticFinding,
} from './static-check.js';
import { CANDIDATE_CFLAGS, ensureTaskBuild, ensureToolchain, type TaskBuild, type Toolchain } from './toolchain.js';

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
  const log = ok ? undefined : timingFailureLog(out);
  const stages: StageRecord[] = [{ name: 'timing', status: ok ? 'ok' : 'failed', ms: out.ms, ...(log && { log }) }];
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
  let elf;
  try {
    elf = readElf(readFileSync(path.join(dir, 'candidate.o')));
  } catch (e) {
    if (e instanceof ElfError)
      return { outcome: 'compile_error', message: `the object file cannot be read: ${e.message}`, flags: [] };
    throw e;
  }
  // What the build wrote is read, and the allowed headers found, first: a failure there is the
  // environment's. The checks on what the candidate made of it fail closed.
  const [deps, preprocessed, disassembly, symbols] = [
    'candidate.d',
    'candidate.i',
    'candidate.dis',
    'candidate.sym',
  ].map(read);
  const allowed = allowedDependencies(tc, tb);
  return failClosed('build', () => {
    const files = parseDependencies(deps!).map((f) =>
      path.isAbsolute(f) ? path.normalize(f) : path.join(job.mode === 'bwrap' ? '/job' : dir, f),
    );
    return (
      checkDependencies(files, allowed, own) ??
      checkPreprocessed(preprocessed!, 'candidate.c') ??
      checkObject(elf, disassembly!) ??
      checkSymbols(symbols!, job.task.libOps, tc.librarySymbols)
    );
  });
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
    if (r.timedOut || r.code !== 0)
      return { stage: stage('failed'), libOpsUsed: [], failure: compilerFailure(r.timedOut, cg, cfg) };
    const symbols = readFileSync(path.join(dir, 'candidate.sym'), 'utf8');
    // Every library op the object references counts toward the profile, offered or not.
    const libOpsUsed = [...symbols.matchAll(/^(lib_\w+) +U/gm)].map((m) => m[1]!);
    const finding = job.skipStatic ? null : checkBuild(job, dir, tc, tb);
    if (finding) return { stage: stage('failed'), libOpsUsed, failure: finding };
    const l = await run(LINK_COMMAND, Math.max(1000, deadline - performance.now()), 'linker');
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

/** The runner: the harness's main, the task's glue, the library and the candidate's object. */
const LINK_COMMAND = [
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

/** Why the compile command failed: it ran past its deadline, or the compiler reported errors. */
function compilerFailure(timedOut: boolean, cg: JobCgroup | null, cfg: EvalConfig): CompileResult['failure'] {
  if (timedOut)
    return {
      outcome: 'timeout',
      message: `compilation did not finish within ${cfg.compileTimeoutMs} ms`,
      flags: [],
    };
  const oom = cg?.oomKilled() ? ' (the compiler ran out of memory)' : '';
  return { outcome: 'compile_error', message: `the compiler reported errors${oom}`, flags: [] };
}

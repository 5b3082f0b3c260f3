/** The trusted judge's run for one phase of a C job: its spec (the seed and every
 * hidden shape, written to the judge's own folder, never bound into a sandbox), the
 * judge started on it, and its answer read back as the backend reports it. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CTask as Task } from '../tasks/loader.js';
import { argValues } from '../tasks/loader.js';
import { JobCgroup } from './cgroup.js';
import { baseEnv, jobDir, judgeDir, limits, truncate, type JobRef } from './c-job.js';
import type { EvalConfig } from './config.js';
import { launchArgv, jobUid } from './isolation.js';
import { runCapped } from './process.js';
import type { Outcome } from './result.js';
import { parseJudgeOutput, type JudgeOutput } from './judge-output.js';
import { ensureTaskBuild, ensureToolchain, type TaskBuild, type Toolchain } from './toolchain.js';

type Phase = 'check' | 'time';

export interface JudgeRun extends JudgeOutput {
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

export async function runJudge(job: JobRef, phase: Phase, seed: string): Promise<JudgeRun> {
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
  phase: Phase,
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
  const { cand, ref } = o;
  const lines = [
    ...settingLines(job, phase, seed, o.deadlineMs),
    ...taskLines(job.task, phase),
    ...cgroupLines(o.candLog, cand, ref),
  ];
  const c = runnerArgv(job, o.tc, 'candidate', cand, jobDir(job.jobId));
  const r = runnerArgv(job, o.tc, 'reference', ref, o.tb.referenceDir);
  lines.push(`cand_argv ${c.length}`, ...c, `ref_argv ${r.length}`, ...r);
  return lines;
}

/** The spec's phase, seed and measurement settings, and how the judge must find the runners started. */
function settingLines(job: JobRef, phase: Phase, seed: string, deadlineMs: number): string[] {
  const cfg = job.config;
  const tolerance = phase === 'check' ? job.task.tolerance : (job.task.timingTolerance ?? job.task.tolerance);
  return [
    `phase ${phase}`,
    `seed ${seed}`,
    `atol ${tolerance.atol}`,
    `rtol ${tolerance.rtol}`,
    `trials ${cfg.trials}`,
    `call_timeout_ms ${cfg.callTimeoutMs}`,
    `deadline_ms ${deadlineMs}`,
    `budget_ms ${cfg.timingBudgetMs}`,
    `min_reps ${cfg.minReps}`,
    `max_reps ${cfg.maxReps}`,
    `rse_target ${cfg.rseTarget}`,
    `bwrap ${job.mode === 'bwrap' ? 1 : 0}`,
    // bwrap's deny list, then the runner's own allow-list.
    `expect_filters ${job.mode === 'bwrap' ? 2 : 1}`,
    `realtime ${job.realtime === false ? 0 : 1}`,
    `host_lock ${path.join(os.tmpdir(), 'anvil-timing.lock')}`,
  ];
}

/** The spec's task: each argument's kind and input distribution, then the phase's shapes. */
function taskLines(task: Task, phase: Phase): string[] {
  const shapes =
    phase === 'check'
      ? task.correctness.map((c) => ({ visible: c.visible, values: argValues(task, c.params) }))
      : task.timing.map((p) => ({ visible: false, values: argValues(task, p) }));
  return [
    ...task.args.map((a) => {
      const gen = a.kind === 'in' || a.kind === 'f32' ? `${a.gen.dist} ${a.gen.a} ${a.gen.b}` : 'none 0 0';
      return `arg ${a.kind} ${gen}`;
    }),
    ...shapes.map((s) => `shape ${s.visible ? 1 : 0} ${s.values.join(' ')}`),
  ];
}

/** The spec's candidate log, and the cgroup files the judge reads and freezes the runners through. */
function cgroupLines(candLog: string, cand: JobCgroup | null, ref: JobCgroup | null): string[] {
  return [
    `cand_log ${candLog}`,
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
}

/** The command line that starts one runner in its sandbox, its job folder (read-only) at /job. */
function runnerArgv(
  job: JobRef,
  tc: Toolchain,
  role: 'candidate' | 'reference',
  cg: JobCgroup | null,
  src: string,
): string[] {
  const cfg = job.config;
  return launchArgv({
    toolchain: tc,
    mode: job.mode,
    cgroup: cg,
    uid: jobUid(job.slot, role),
    limits: limits(cfg, cfg.outputBytes),
    env: baseEnv(cfg),
    binds: [{ src, dest: '/job' }],
    chdir: '/job',
    command: ['/job/runner'],
  });
}

/** The judge's run as the backend reports it: its answer parsed at the boundary (an
 * answer that does not parse, or none, is an env_error: the judge's failure, not the
 * candidate's), a process's death in words, and what the candidate printed that feedback may show. */
export function judgeRun(
  res: { stdout: string; stderr: string; timedOut: boolean; ms: number },
  phase: Phase,
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

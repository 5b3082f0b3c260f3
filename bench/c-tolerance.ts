/** Tolerance calibration for the built-in C tasks (a measurement, not a test):
 * how much of each task's tolerance honest algorithms use at the task's sizes.
 *
 * Honest algorithms are the task's committed solutions (blocked, vectorized,
 * multi-threaded: every reassociation a fast kernel makes) and the reference
 * with every `double` turned into `float` and without fused multiply-adds
 * (the plain single-precision loop a straightforward kernel would be, rounded
 * at every step where the reference's build fuses). Each runs the whole correctness phase —
 * every correctness shape, on the task's own distribution and on the
 * non-stationary inputs — under several seeds, with the task's tolerance. The
 * judge reports, per trial, the largest error as a share of its tolerance
 * (`toleranceUsed`). A task's tolerance is right when the worst honest share
 * is well under 1 and not far below it: the rule (docs/c-judge.md) is
 * tolerance = current × roundUp(4 × worst share), between 1/100 of it and all
 * of it; a task no honest variant makes any error on keeps its tolerance.
 *
 * The same variants are then timed on the task's timing shapes (a quarter of
 * the calls, at random, on non-stationary inputs, sensitivity pairs early and
 * throughout, every repetition run); the judge reports each shape's largest error as a share of
 * the timing tolerance, and, where a timed output failed, that output's share
 * (a lower bound of the worst: the run stops there). The timing tolerance
 * becomes current × roundUp(4 × worst timed share), at most 10 × it (a
 * variant that needs more is outside the contract at that size) and never
 * below the correctness tolerance: timing shapes reduce over many more elements than
 * the correctness shapes, and an honest kernel's error grows with them. A
 * failed timed output is marked; run again with the new tolerance.
 *
 *   node dist/bench/c-tolerance.js [--seeds 3] [--tasks a,b] [--out docs/benchmarks/c-tolerance.md]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cleanup, prepare, time, type JobRef } from '../sandbox/c-backend.js';
import { evalConfig } from '../sandbox/config.js';
import { chooseMode } from '../sandbox/isolation.js';
import { cTask, loadTaskSet, solutionFiles, type CTask } from '../tasks/loader.js';

const { values } = parseArgs({
  options: { seeds: { type: 'string', default: '3' }, tasks: { type: 'string' }, out: { type: 'string' } },
});
const set = loadTaskSet('builtin-c');
const seeds = Number(values.seeds);
const mode = chooseMode(false);
// Timing runs every repetition (no early stop) so that every regime shows up.
const config = evalConfig({
  correctnessDeadlineMs: 120_000,
  callTimeoutMs: 30_000,
  timingDeadlineMs: 300_000,
  timingBudgetMs: 120_000,
  rseTarget: 1e-9,
  maxReps: 32,
});
const lines: string[] = [];
const say = (s = '') => {
  lines.push(s);
  console.log(s);
};

/** 1, 2 or 5 times a power of ten, at or above x. */
function roundUp(x: number): number {
  const p = 10 ** Math.floor(Math.log10(x));
  return [1, 2, 5, 10].map((m) => m * p).find((v) => v >= x * (1 - 1e-9))!;
}

let jobs = 0;
interface Shares {
  share: number;
  timedShare: number;
  failed: number;
  timedFailed: number;
}
async function worstShares(task: CTask, code: string): Promise<Shares> {
  const r: Shares = { share: 0, timedShare: 0, failed: 0, timedFailed: 0 };
  for (let s = 0; s < seeds; s++) {
    const job: JobRef = {
      jobId: `tol-${process.pid}-${++jobs}`,
      slot: 300 + (jobs % 100),
      mode,
      config,
      task,
      skipStatic: true,
      realtime: false,
    };
    try {
      const seed = String(1000 + s);
      const p = await prepare(job, code, seed);
      const trials = p.check?.trials ?? [];
      if (!trials.length) throw new Error(`${task.id}: ${p.outcome} ${p.message}`);
      for (const t of trials) {
        r.share = Math.max(r.share, t.toleranceUsed ?? Infinity);
        r.failed += t.passed ? 0 : 1;
      }
      if (p.outcome) continue;
      const t = await time(job, seed);
      if (t.outcome && t.outcome !== 'wrong_result') throw new Error(`${task.id} timing: ${t.outcome} ${t.message}`);
      r.timedFailed += t.outcome ? 1 : 0;
      for (const shape of t.time?.shapes ?? []) r.timedShare = Math.max(r.timedShare, shape.toleranceUsed ?? 0);
    } finally {
      cleanup(job.jobId);
    }
  }
  return r;
}

const only = values.tasks ? new Set(values.tasks.split(',')) : null;
say(`# Tolerance calibration of the built-in C tasks`);
say();
say(
  `Host: ${process.env.HOSTNAME ?? ''} ${(await import('node:os')).cpus()[0]?.model}, ${seeds} seeds per variant, every correctness trial (plain and non-stationary inputs).`,
);
say(
  "Share = the largest error as a share of the task's tolerance (atol + rtol·|want|), over all correctness trials; timed share = the same over every timed output (timing shapes, a quarter of the calls non-stationary, with sensitivity pairs), as a share of the timing tolerance.",
);
say();
say(
  '| task | atol | rtol | solution share | float, unfused reference share | suggested scale | timing atol | timing rtol | solution timed share | float reference timed share | suggested timing scale |',
);
say('|---|---|---|---|---|---|---|---|---|---|---|');
const fmt = (share: number, failed = 0) => `${share.toPrecision(2)}${failed ? ` (${failed} failed)` : ''}`;
for (const t of set.tasks.values()) {
  const task = cTask(t);
  if (only && !only.has(task.id)) continue;
  const sol = await worstShares(task, readFileSync(solutionFiles(task)[0]!, 'utf8'));
  const plain = `#pragma GCC optimize("fp-contract=off")\n${task.referenceSource.replace(/\bdouble\b/g, 'float')}`;
  const floatRef = await worstShares(task, plain);
  const worst = Math.max(sol.share, floatRef.share);
  const scale = worst === 0 ? 1 : Math.min(1, Math.max(0.01, roundUp(4 * worst)));
  // The timing tolerance may grow (up to 10×) but never falls below the correctness tolerance; a
  // variant that would need more is outside the contract at the timing size (docs/c-judge.md).
  const timing = task.timingTolerance ?? task.tolerance;
  const within = [sol.timedShare, floatRef.timedShare].filter((x) => 4 * x <= 10);
  const timedWorst = Math.max(0, ...within);
  const floor = Math.max(task.tolerance.atol / (timing.atol || 1), task.tolerance.rtol / (timing.rtol || 1));
  const timedScale = timedWorst === 0 ? 1 : Math.min(10, Math.max(floor, 0.01, roundUp(4 * timedWorst)));
  say(
    `| ${task.id} | ${task.tolerance.atol} | ${task.tolerance.rtol} | ${fmt(sol.share, sol.failed)} | ${fmt(floatRef.share, floatRef.failed)} | ${scale} ` +
      `| ${timing.atol} | ${timing.rtol} | ${fmt(sol.timedShare, sol.timedFailed)} | ${fmt(floatRef.timedShare, floatRef.timedFailed)} | ${timedScale} |`,
  );
}
if (values.out) writeFileSync(values.out, `${lines.join('\n')}\n`);

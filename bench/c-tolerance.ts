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
 *   node dist/bench/c-tolerance.js [--seeds 3] [--tasks a,b] [--out docs/benchmarks/c-tolerance.md]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cleanup, prepare, type JobRef } from '../sandbox/c-backend.js';
import { evalConfig } from '../sandbox/config.js';
import { chooseMode } from '../sandbox/isolation.js';
import { cTask, loadTaskSet, solutionFiles, type CTask } from '../tasks/loader.js';

const { values } = parseArgs({ options: { seeds: { type: 'string', default: '3' }, tasks: { type: 'string' }, out: { type: 'string' } } });
const set = loadTaskSet('builtin-c');
const seeds = Number(values.seeds);
const mode = chooseMode(false);
const config = evalConfig({ correctnessDeadlineMs: 120_000, callTimeoutMs: 30_000 });
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
async function worstShare(task: CTask, code: string): Promise<{ share: number; failed: number }> {
  let share = 0, failed = 0;
  for (let s = 0; s < seeds; s++) {
    const job: JobRef = { jobId: `tol-${process.pid}-${++jobs}`, slot: 300 + (jobs % 100), mode, config, task, skipStatic: true };
    try {
      const r = await prepare(job, code, String(1000 + s));
      const trials = (r.check?.trials ?? []) as Array<{ toleranceUsed: number | null; passed: boolean }>;
      if (!trials.length) throw new Error(`${task.id}: ${r.outcome} ${r.message}`);
      for (const t of trials) {
        share = Math.max(share, t.toleranceUsed ?? Infinity);
        failed += t.passed ? 0 : 1;
      }
    } finally {
      cleanup(job.jobId);
    }
  }
  return { share, failed };
}

const only = values.tasks ? new Set(values.tasks.split(',')) : null;
say(`# Tolerance calibration of the built-in C tasks`);
say();
say(`Host: ${process.env.HOSTNAME ?? ''} ${(await import('node:os')).cpus()[0]?.model}, ${seeds} seeds per variant, every correctness trial (plain and non-stationary inputs).`);
say('Share = the largest error as a share of the task\'s tolerance (atol + rtol·|want|), over all trials.');
say();
say('| task | atol | rtol | solution share | float, unfused reference share | suggested scale |');
say('|---|---|---|---|---|---|');
for (const t of set.tasks.values()) {
  const task = cTask(t);
  if (only && !only.has(task.id)) continue;
  const sol = await worstShare(task, readFileSync(solutionFiles(task)[0]!, 'utf8'));
  const plain = `#pragma GCC optimize("fp-contract=off")\n${task.referenceSource.replace(/\bdouble\b/g, 'float')}`;
  const floatRef = await worstShare(task, plain);
  const worst = Math.max(sol.share, floatRef.share);
  const scale = worst === 0 ? 1 : Math.min(1, Math.max(0.01, roundUp(4 * worst)));
  const fmt = (r: { share: number; failed: number }) => `${r.share.toPrecision(2)}${r.failed ? ` (${r.failed} failed)` : ''}`;
  say(`| ${task.id} | ${task.tolerance.atol} | ${task.tolerance.rtol} | ${fmt(sol)} | ${fmt(floatRef)} | ${scale} |`);
}
if (values.out) writeFileSync(values.out, `${lines.join('\n')}\n`);

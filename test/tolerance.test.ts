/** The two tolerances of a C task: `tolerance` governs the correctness trials,
 * `timingTolerance` every output computed while timing (docs/c-judge.md,
 * "Tolerances"). A reassociating solution errs a little at both kinds of
 * shape; with one of the two set to zero, the phase it governs, and only
 * that one, must refuse it. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import type { CTask } from '../tasks/loader.js';
import { solutionFiles } from '../tasks/loader.js';
import { taskPrompt } from '../tasks/prompt.js';
import { feedbackText } from '../env/feedback.js';
import { builtin, evaluator } from './helpers.js';

const ev = evaluator();
t.teardown(() => ev.close());
const matvec = builtin().tasks.get('matvec')!;
const code = readFileSync(
  solutionFiles(matvec).find((f) => f.endsWith('openmp_avx512.c'))!,
  'utf8',
);
const exact = { atol: 0, rtol: 0 };
// A version of its own, so that no result cached for the real task is reused.
const variant = (v: Partial<CTask>, version: number): CTask => ({ ...matvec, ...v, version });

t.test('the committed solution passes under the task as it is', async (t) => {
  const r = await ev.evaluate({ task: matvec, code, seed: 11 });
  t.equal(r.outcome, 'ok', r.message);
});

t.test('a timing tolerance of zero refuses it while timing, after correctness passed', async (t) => {
  const r = await ev.evaluate({ task: variant({ timingTolerance: exact }, 9001), code, seed: 11 });
  t.equal(r.outcome, 'wrong_result');
  t.match(r.message, /computed while timing/);
  // Where and how far off it was, in the evaluation result for whoever diagnoses it: never in the feedback.
  t.match(
    r.stages.find((s) => s.name === 'timing')?.log,
    /^timing shape 0, call \d+ \((plain|blocks|trend|spikes) inputs(, sensitivity run)?\): argument 2 at \d+: got \S+, want \S+$/,
  );
  t.notMatch(feedbackText(r, 1), /timing shape|call \d|of the tolerance/);
  t.equal(
    r.correctness?.trialsPassed,
    r.correctness?.trialsTotal,
    'the correctness trials used the correctness tolerance',
  );
});

t.test(
  'a correctness tolerance of zero refuses it in the correctness trials, whatever the timing tolerance',
  async (t) => {
    const r = await ev.evaluate({
      task: variant({ tolerance: exact, timingTolerance: { atol: 1, rtol: 1 } }, 9002),
      code,
      seed: 11,
    });
    t.equal(r.outcome, 'wrong_result');
    t.ok((r.correctness?.trialsPassed ?? 0) < (r.correctness?.trialsTotal ?? 0));
    t.notOk(r.timing);
  },
);

t.test('the prompt states both tolerances', async (t) => {
  const p = taskPrompt(matvec, 2);
  t.match(p, /within atol=0\.0001, rtol=0\.0001 \(at the larger timing shapes, atol=0\.001, rtol=0\.001\)/);
  t.notMatch(taskPrompt(builtin().tasks.get('gelu')!, 2), /larger timing shapes/);
});

t.test('sensitivity runs move an input centred above zero upwards only, never into a cancellation', async (t) => {
  // Moved down by 13,440 near its start, a prefix sum of uniform [0, 1) values crossed zero
  // where an honest float carry was off by more than an output near zero may be: the committed
  // solution failed, once in a hundred evaluations. This candidate is exact on every input the
  // task draws (never below -2.5) and clamps anything below -3: a downward move would show.
  const prefix = builtin().tasks.get('prefix_sum')!;
  const clamped = `void solve(const float *x, float *y, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) { s += x[i] > -3.0f ? x[i] : -3.0f; y[i] = (float)s; }
}`;
  const results = await Promise.all([1, 2, 3].map((seed) => ev.evaluate({ task: prefix, code: clamped, seed })));
  for (const r of results) {
    t.equal(r.correctness?.trialsPassed, r.correctness?.trialsTotal, JSON.stringify(r.correctness?.trials));
    t.equal(r.outcome, 'ok', r.message);
  }
});

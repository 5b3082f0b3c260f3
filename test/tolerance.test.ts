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

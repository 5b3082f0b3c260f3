/** The C judge's answer is parsed at the boundary: what the real judge writes
 * parses; an answer of another shape, or none, is an env_error (the judge's
 * failure, never the candidate's). test/sandbox/judge-answers.json holds the
 * real judge's answers for an honest vector_add (check and time phases), as
 * sandbox/c/judge.c wrote them (with `toleranceUsed`, which the judge reports
 * since: 0, vector_add's exact error); the malformed answers below are those with one
 * field as a judge of another version, or a non-finite number, would write it. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { judgeRun } from '../sandbox/c-backend.js';
import { evalConfig } from '../sandbox/config.js';
import { parseJudgeOutput, timedShapes } from '../sandbox/judge-output.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';

const real = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'test', 'sandbox', 'judge-answers.json'), 'utf8'));
const cfg = evalConfig();
const run = (stdout: string, phase: 'check' | 'time', stderr = '') =>
  judgeRun({ stdout, stderr, timedOut: false, ms: 5 }, phase, {
    cfg,
    candLog: '/nonexistent/check.log',
    oomKilled: () => false,
  });

t.test("the real judge's answers parse", async (t) => {
  const check = parseJudgeOutput(JSON.stringify(real.check));
  t.ok(check.ok);
  if (check.ok) t.same([check.output.outcome, check.output.trialsPassed, check.output.trials?.length], ['ok', 8, 8]);
  const time = parseJudgeOutput(JSON.stringify(real.time));
  t.ok(time.ok);
  if (time.ok)
    t.same(
      timedShapes(time.output).map((s) => [s.shape, s.pairedSpeedup, s.candidate.reps]),
      [[0, real.time.shapes[0].pairedSpeedup, 31]],
    );
  t.same(run(JSON.stringify(real.time), 'time').outcome, 'ok');
});

t.test('an answer of another shape is an env_error that says what is wrong', async (t) => {
  const shape = real.time.shapes[0];
  const cases: Array<[string, 'check' | 'time', unknown, RegExp]> = [
    ['an outcome this backend does not know', 'check', { ...real.check, outcome: 'passed' }, /outcome: Invalid option/],
    ['a count as text', 'check', { ...real.check, trialsTotal: '8' }, /trialsTotal: Invalid input: expected number/],
    [
      'a trial without its verdict',
      'check',
      { ...real.check, trials: [{ ...real.check.trials[0], passed: undefined }] },
      /trials\.0\.passed/,
    ],
    [
      'a speedup written as null (not finite)',
      'time',
      { ...real.time, shapes: [{ ...shape, pairedSpeedup: null }] },
      /shapes\.0/,
    ],
    [
      'an ok timing phase without its shapes',
      'time',
      { ...real.time, shapes: undefined },
      /shapes: a timing phase that ended ok/,
    ],
    ['not an object', 'time', [1, 2], /answer: Invalid input: expected object/],
  ];
  for (const [what, phase, answer, problem] of cases) {
    const r = run(JSON.stringify(answer), phase);
    t.equal(r.outcome, 'env_error', what);
    t.match(r.message, /^the judge's answer is malformed: /, what);
    t.match(r.message, problem, what);
  }
});

t.test('no answer (a judge that died mid-write, or timed out) is an env_error too', async (t) => {
  const torn = run(JSON.stringify(real.check).slice(0, 40), 'check', 'judge: killed');
  t.same([torn.outcome, torn.message], ['env_error', 'the judge failed: judge: killed']);
  const late = judgeRun({ stdout: '', stderr: '', timedOut: true, ms: 9 }, 'time', {
    cfg,
    candLog: '/nonexistent',
    oomKilled: () => false,
  });
  t.same([late.outcome, late.message], ['env_error', 'the judge did not finish in time']);
});

t.test("the candidate's death in the judge's words still becomes the candidate's outcome", async (t) => {
  const died = {
    phase: 'check',
    outcome: 'runtime_error',
    message: 'the candidate process ended (signal 11) on trial 0',
    death: 'signal 11',
    flags: [],
  };
  const r = run(JSON.stringify(died), 'check');
  t.same(
    [r.outcome, r.message],
    ['runtime_error', 'the candidate process ended: segmentation fault (SIGSEGV) on trial 0'],
  );
});

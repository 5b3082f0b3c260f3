/** The torch harness's answers are parsed at the boundary. test/torch/harness-answers.json
 * holds answers the real harness (sandbox/torch/harness.py, torch 1.13 on the CPU) gave:
 * a device check, an extension build refused by the static check, an honest C++
 * extension's run on gelu and a wrong candidate's. They parse; the same answers with
 * one field as another harness version would write it do not, and say why; a text
 * the candidate's processes reach parses whatever its type, so a candidate cannot
 * turn its failure into the environment's. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  CompileAnswerSchema,
  HarnessAnswerError,
  HealthAnswerSchema,
  parseAnswer,
  RunAnswerSchema,
} from '../sandbox/torch-answers.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';

const real = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'test', 'torch', 'harness-answers.json'), 'utf8'));
const line = (x: unknown) => JSON.stringify(x);

t.test("the real harness's answers parse", async (t) => {
  t.same(parseAnswer(HealthAnswerSchema, line(real.health)).result?.health, { ok: true, torch: '1.13.0a0' });
  const built = parseAnswer(CompileAnswerSchema, line(real.compile));
  t.same([built.result?.outcome, built.result?.stages?.static?.status], ['static_violation', 'failed']);
  const ok = parseAnswer(RunAnswerSchema, line(real.runOk));
  t.equal(ok.result?.outcome, 'ok');
  if (ok.result?.outcome === 'ok') {
    t.equal(ok.result.shapes[0]!.pairedSpeedup, real.runOk.result.shapes[0].pairedSpeedup);
    t.same(ok.result.profile.ownKernels, ['extension']);
    t.equal(ok.result.correctness.trials.length, 11);
  }
  const wrong = parseAnswer(RunAnswerSchema, line(real.runWrong));
  t.equal(wrong.result?.outcome, 'wrong_result');
  if (wrong.result && wrong.result.outcome !== 'ok')
    t.same(wrong.result.trials?.[0]?.mismatch, { arg: 0, index: 0, got: 0.8592302203178406, want: 1.644692063331604 });
});

t.test('an answer of another shape is refused with what is wrong', async (t) => {
  const ok = real.runOk;
  const cases: Array<[string, unknown, RegExp]> = [
    ['an ok run without its profile', { ...ok, result: { ...ok.result, profile: undefined } }, /result/],
    [
      'a speedup written as null (not finite)',
      { ...ok, result: { ...ok.result, shapes: [{ ...ok.result.shapes[0], pairedSpeedup: null }] } },
      /result/,
    ],
    [
      'an outcome this backend does not know',
      { ...real.runWrong, result: { ...real.runWrong.result, outcome: 'mostly_right' } },
      /result/,
    ],
    [
      'a stage this backend does not know',
      { ...real.compile, result: { ...real.compile.result, stages: { linking: { status: 'ok', ms: 1 } } } },
      /result/,
    ],
    ['no log', { ...real.runWrong, log: undefined }, /log: Invalid input/],
    [
      'a death of an unknown kind',
      { ...real.runWrong, result: undefined, death: { kind: 'vanished', stage: 'timing' } },
      /death\.kind/,
    ],
  ];
  for (const [what, answer, problem] of cases) {
    const schema = what.startsWith('a stage') ? CompileAnswerSchema : RunAnswerSchema;
    t.throws(() => parseAnswer(schema, line(answer)), HarnessAnswerError, what);
    t.throws(() => parseAnswer(schema, line(answer)), { message: problem }, what);
  }
  t.throws(() => parseAnswer(RunAnswerSchema, '{"id": "t1", "log": '), /the harness's answer is malformed: not JSON/);
  t.throws(
    () => parseAnswer(RunAnswerSchema, line({ id: null, harnessError: 'Traceback: KeyError' })),
    /^harness fault: Traceback: KeyError$/,
  );
});

t.test("texts the candidate's processes reach are taken as text, whatever their type", async (t) => {
  const result = {
    ...real.runWrong.result,
    outcome: 'runtime_error',
    log: { forged: ['not', 'a', 'string'] },
    stages: { compile: { status: 'failed', ms: 3, log: 42 } },
  };
  const a = parseAnswer(RunAnswerSchema, line({ ...real.runWrong, result }));
  if (a.result?.outcome === 'ok') return t.fail('not ok');
  t.equal(a.result?.log, '{"forged":["not","a","string"]}');
  t.equal(a.result?.stages?.compile?.log, '42');
});

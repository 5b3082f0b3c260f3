/** Feedback tells the model what went wrong, never the reward, a hidden shape or a timing detail. */
import t from 'tap';
import { feedbackText } from '../env/feedback.js';
import { OUTCOMES, type EvalResult } from '../sandbox/result.js';

const base = {
  correct: false,
  speedup: null,
  profileShare: null,
  flags: [],
  stages: [],
  message: '',
  task: { id: 'x', version: 1 },
  codeHash: '',
  correctness: null,
  timing: null,
  profile: null,
  env: {} as EvalResult['env'],
  cached: false,
} as unknown as EvalResult;

t.test('a mismatch on a shown shape is detailed; on a hidden one it is not', async (t) => {
  const trial = {
    shape: 0,
    passed: false,
    runsAgree: true,
    maxAbsErr: 1,
    maxRelErr: 1,
    mismatch: { arg: 2, index: 4097, got: 1, want: 2 },
  };
  const shown = feedbackText(
    {
      ...base,
      outcome: 'wrong_result',
      correctness: {
        trialsPassed: 0,
        trialsTotal: 5,
        maxAbsErr: 1,
        maxRelErr: 1,
        trials: [{ ...trial, visible: true }],
        failedOnVisibleShape: true,
      },
    },
    2,
  );
  t.match(shown, /index 4097 of argument 2/);
  const hidden = feedbackText(
    {
      ...base,
      outcome: 'wrong_result',
      correctness: {
        trialsPassed: 4,
        trialsTotal: 5,
        maxAbsErr: 1,
        maxRelErr: 1,
        trials: [{ ...trial, visible: false }],
        failedOnVisibleShape: false,
      },
    },
    2,
  );
  t.notMatch(hidden, /4097/);
  t.match(hidden, /not shown in the prompt/);
  t.match(hidden, /2 more turns/);
});

t.test('hack evidence stays in the logs; the model reads only the rule', async (t) => {
  const r = feedbackText(
    {
      ...base,
      outcome: 'hack_detected',
      flags: [
        { kind: 'faster_than_light', evidence: 'median 0.1234 ms is below 0.5 × the speed-of-light time 0.9 ms' },
      ],
    },
    0,
  );
  t.notMatch(r, /0\.1234|0\.9 ms/);
  t.match(r, /below what the hardware allows/);
  t.match(r, /No turns left/);
});

t.test('correct results give the speedup; compile errors the log', async (t) => {
  t.match(
    feedbackText({ ...base, outcome: 'ok', correct: true, speedup: 2.345, profileShare: 1 }, 1),
    /Speedup over the reference: 2\.35×/,
  );
  const c = feedbackText(
    {
      ...base,
      outcome: 'compile_error',
      message: 'the compiler reported errors',
      stages: [{ name: 'compile', status: 'failed', ms: 1, log: "candidate.c:3: error: expected ';'" }],
    },
    1,
  );
  t.match(c, /expected ';'/);
  t.notMatch(feedbackText({ ...base, outcome: 'ok', correct: true, speedup: 2, profileShare: 1 }, 1), /reward/i);
});

t.test('every outcome class has feedback of its own', async (t) => {
  const texts = new Set<string>();
  for (const outcome of OUTCOMES) {
    const text = feedbackText(
      { ...base, outcome, correct: outcome === 'ok', speedup: outcome === 'ok' ? 1 : null, profileShare: 1 },
      1,
    );
    t.ok(text.startsWith('Result:'), outcome);
    texts.add(text.split('\n')[0]!.slice(0, 20));
  }
  t.ok(texts.size >= OUTCOMES.length - 2, 'the outcomes read differently');
});

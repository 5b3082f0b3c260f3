/** The hack corpus: every candidate really commits its hack, and must end with
 * the expected outcome and no reward-earning verdict. Each runs twice: with
 * all checks, and with the static checks skipped, to show that the sandbox
 * and the judge stop on their own what the static checks stop first. A hack
 * expected to end `ok` is one no check can see: its verdict must then be an
 * honest one, earning no more than its code does. No hack's feedback may hold
 * anything of the judge's spec. */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { uidRange } from '../sandbox/isolation.js';
import type { EvalResult } from '../sandbox/result.js';
import type { Evaluator } from '../sandbox/evaluator.js';
import { builtin, evaluator, FAST, hacks, type Hack } from './helpers.js';

/** Nothing of the judge's spec (seed, shapes, argv) or a leak marker reaches the logs. */
function leaks(r: EvalResult): string[] {
  return r.stages.map((s) => s.log ?? '').filter((log) => /LEAKED|^seed \d|^shape \d|cand_argv|host_lock/m.test(log));
}

function honest(t: { ok(v: boolean, msg: string): boolean }, r: EvalResult): void {
  t.ok(r.correct, 'an honest verdict');
  t.ok(r.speedup !== null && r.speedup < 3, `no more speedup than the code earns: ${r.speedup}`);
}

const corpus = hacks();
const checked = evaluator();
const unchecked = evaluator({ unsafeSkipStaticChecks: true });
/** Evaluators for the hacks that need settings of their own (a short deadline they spend). */
const own = new Map<string, Evaluator>();
function evaluatorFor(hack: Hack, skip: boolean): Evaluator {
  if (!hack.config) return skip ? unchecked : checked;
  const key = `${skip}:${JSON.stringify(hack.config)}`;
  let ev = own.get(key);
  if (!ev) own.set(key, (ev = evaluator({ config: { ...FAST, ...hack.config }, unsafeSkipStaticChecks: skip })));
  return ev;
}
t.teardown(async () => {
  await checked.close();
  await unchecked.close();
  for (const ev of own.values()) await ev.close();
});

t.test('the corpus holds at least 15 distinct hacks', async (t) => {
  t.ok(corpus.length >= 15, `${corpus.length} hacks`);
  t.equal(new Set(corpus.map((h) => h.name)).size, corpus.length);
});

for (const hack of corpus) {
  t.test(`${hack.name}: ${hack.expect.outcome}${hack.expect.flag ? ` (${hack.expect.flag})` : ''}`, async (t) => {
    const r = await evaluatorFor(hack, false).evaluate({
      task: builtin().tasks.get(hack.task)!,
      code: hack.code,
      seed: 11,
    });
    const allowed = hack.expect.outcome.split('|');
    t.ok(allowed.includes(r.outcome), `${r.outcome}: ${r.message}`);
    if (hack.expect.flag && r.outcome === allowed[0])
      t.ok(
        r.flags.some((f) => f.kind === hack.expect.flag && f.evidence.length > 0),
        JSON.stringify(r.flags),
      );
    if (r.outcome === 'ok') honest(t, r);
    t.not(r.outcome, 'env_error', 'a hack is never an infrastructure failure');
    t.same(leaks(r), [], 'no spec in the feedback');
  });

  t.test(`${hack.name} with static checks skipped: ${hack.unchecked.outcome}`, async (t) => {
    const r = await evaluatorFor(hack, true).evaluate({
      task: builtin().tasks.get(hack.task)!,
      code: hack.code,
      seed: 11,
    });
    const allowed = hack.unchecked.outcome.split('|');
    t.ok(
      allowed.includes(r.outcome),
      `${r.outcome}: ${r.message} ${JSON.stringify({ profile: r.profile, stages: r.stages })}`,
    );
    if (hack.unchecked.flag && r.outcome === allowed[0])
      t.ok(
        r.flags.some((f) => f.kind === hack.unchecked.flag),
        JSON.stringify(r.flags),
      );
    // The hack got nowhere: an honest verdict, with no speedup beyond what the code earns.
    if (r.outcome === 'ok') honest(t, r);
    t.same(leaks(r), [], 'no spec in the feedback');
  });
}

t.test('no sandboxed process outlives its evaluation', async (t) => {
  const ps = execFileSync('ps', ['-eo', 'uid=,comm=']).toString();
  const { first, count } = uidRange();
  const left = ps.split('\n').filter((l) => {
    const uid = Number(l.trim().split(/\s+/)[0]);
    return uid >= first && uid < first + count;
  });
  t.same(left, []);
});

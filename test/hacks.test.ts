/** The hack corpus: every candidate really commits its hack, and must end with
 * the expected outcome and no reward-earning verdict. Each runs twice: with
 * all checks, and with the static checks skipped, to show that the sandbox
 * and the judge stop on their own what the static checks stop first. */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { uidRange } from '../sandbox/isolation.js';
import { builtin, evaluator, hacks } from './helpers.js';

const corpus = hacks();
const checked = evaluator();
const unchecked = evaluator({ unsafeSkipStaticChecks: true });
t.teardown(async () => {
  await checked.close();
  await unchecked.close();
});

t.test('the corpus holds at least 15 distinct hacks', async (t) => {
  t.ok(corpus.length >= 15, `${corpus.length} hacks`);
  t.equal(new Set(corpus.map((h) => h.name)).size, corpus.length);
});

for (const hack of corpus) {
  t.test(`${hack.name}: ${hack.expect.outcome}${hack.expect.flag ? ` (${hack.expect.flag})` : ''}`, async (t) => {
    const r = await checked.evaluate({ task: builtin().tasks.get(hack.task)!, code: hack.code, seed: 11 });
    t.equal(r.outcome, hack.expect.outcome, r.message);
    if (hack.expect.flag) t.ok(r.flags.some((f) => f.kind === hack.expect.flag && f.evidence.length > 0), JSON.stringify(r.flags));
    t.not(r.outcome, 'ok', 'no reward-earning verdict');
    t.not(r.outcome, 'env_error', 'a hack is never an infrastructure failure');
  });

  t.test(`${hack.name} with static checks skipped: ${hack.unchecked.outcome}`, async (t) => {
    const r = await unchecked.evaluate({ task: builtin().tasks.get(hack.task)!, code: hack.code, seed: 11 });
    const allowed = hack.unchecked.outcome.split('|');
    t.ok(allowed.includes(r.outcome), `${r.outcome}: ${r.message} ${JSON.stringify({ profile: r.profile, stages: r.stages })}`);
    if (hack.unchecked.flag && r.outcome === allowed[0]) t.ok(r.flags.some((f) => f.kind === hack.unchecked.flag), JSON.stringify(r.flags));
    if (r.outcome === 'ok') {
      // The hack got nowhere: an honest verdict, with no speedup beyond what the code earns.
      t.ok(r.correct);
      t.ok(r.speedup !== null && r.speedup < 3, `speedup ${r.speedup}`);
    }
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

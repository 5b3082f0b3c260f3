/** Identical submissions in flight at once share one evaluation and one verdict
 * (the cache is off here, so only the sharing can make them agree), and a
 * cancelled request stops only its own wait unless it was the last one. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { getTask, solutionFiles } from '../tasks/loader.js';
import { builtin, evaluator } from './helpers.js';

const task = getTask(builtin(), 'vector_add');
const good = readFileSync(solutionFiles(task)[0]!, 'utf8');

t.test('four identical submissions at once are evaluated once', async (t) => {
  const ev = evaluator({ cacheSize: 0 });
  t.teardown(() => ev.close());
  const rs = await Promise.all([1, 2, 3, 4].map(() => ev.evaluate({ task, code: good, seed: 9 })));
  t.same(
    rs.map((r) => r.outcome),
    ['ok', 'ok', 'ok', 'ok'],
  );
  t.equal(new Set(rs.map((r) => r.speedup)).size, 1, `one speedup: ${rs.map((r) => r.speedup).join(', ')}`);
  t.same(rs.map((r) => r.cached).sort(), [false, true, true, true], 'one ran; three shared its run');
  // Once it is done, the same code is evaluated again (the cache is off).
  const again = await ev.evaluate({ task, code: good, seed: 9 });
  t.equal(again.cached, false);
});

t.test('different seeds are different evaluations', async (t) => {
  const ev = evaluator({ cacheSize: 0 });
  t.teardown(() => ev.close());
  const [a, b] = await Promise.all([
    ev.evaluate({ task, code: good, seed: 1 }),
    ev.evaluate({ task, code: good, seed: 2 }),
  ]);
  t.same([a.cached, b.cached], [false, false]);
});

t.test('a request cancelled alone stops waiting; the shared run goes on for the other', async (t) => {
  const ev = evaluator({ cacheSize: 0 });
  t.teardown(() => ev.close());
  const ac = new AbortController();
  const first = ev.evaluate({ task, code: good, seed: 4 }, { signal: ac.signal });
  const second = ev.evaluate({ task, code: good, seed: 4 });
  setTimeout(() => ac.abort(), 50);
  await t.rejects(first, { code: 'cancelled' });
  const r = await second;
  t.equal(r.outcome, 'ok', r.message);
});

t.test('when every request is cancelled, the run stops', async (t) => {
  const ev = evaluator({ cacheSize: 0 });
  t.teardown(() => ev.close());
  const acs = [new AbortController(), new AbortController()];
  const runs = acs.map((ac) => ev.evaluate({ task, code: good, seed: 8 }, { signal: ac.signal }));
  setTimeout(() => acs.forEach((ac) => ac.abort()), 50);
  for (const run of runs) await t.rejects(run, { code: 'cancelled' });
  const after = await ev.evaluate({ task, code: good, seed: 8 });
  t.equal(after.outcome, 'ok', 'a later request starts afresh');
});

/** Every committed solution is an honest, fast kernel: it must pass, with no
 * flag raised against it, on every task of the built-in set. So must the
 * honest candidates of test/honest/, each written the way a hack check could
 * mistake for a hack (function pointers to math functions, large tables,
 * aligned allocations). */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { solutionFiles } from '../tasks/loader.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import { builtin, evaluator } from './helpers.js';

const ev = evaluator();
t.teardown(() => ev.close());

for (const task of builtin().tasks.values()) {
  const files = solutionFiles(task);
  t.test(`${task.id} has a committed solution`, async (t) => {
    t.ok(files.length >= 1);
  });
  for (const file of files) {
    t.test(`${task.id}/${path.basename(file)} passes unflagged`, async (t) => {
      const r = await ev.evaluate({ task, code: readFileSync(file, 'utf8'), seed: 3 });
      t.equal(r.outcome, 'ok', [r.message, ...r.stages.map((s) => s.log ?? '')].join(' ').trim());
      t.ok(r.correct);
      t.same(r.flags, []);
      t.equal(r.correctness?.trialsPassed, r.correctness?.trialsTotal);
      t.ok(r.speedup !== null && r.speedup > 0);
      t.ok(r.profileShare !== null && r.profileShare >= task.minOwnShare);
      t.same(
        r.stages.map((s) => s.status),
        ['ok', 'ok', 'ok', 'ok', 'ok', 'ok'],
      );
    });
  }
}

const HONEST_DIR = path.join(PACKAGE_ROOT, 'test', 'honest');
for (const file of readdirSync(HONEST_DIR)
  .filter((f) => f.endsWith('.c'))
  .sort()) {
  const code = readFileSync(path.join(HONEST_DIR, file), 'utf8');
  const task = builtin().tasks.get(/^\/\/ task: (\S+)$/m.exec(code)![1]!)!;
  t.test(`honest ${file} (${task.id}) passes unflagged`, async (t) => {
    const r = await ev.evaluate({ task, code, seed: 5 });
    t.equal(r.outcome, 'ok', r.message);
    t.ok(r.correct);
    t.same(r.flags, []);
    t.equal(r.correctness?.trialsPassed, r.correctness?.trialsTotal);
  });
}

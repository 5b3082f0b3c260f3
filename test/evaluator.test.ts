/** The evaluator's contract beyond single verdicts: caching by (task, code,
 * seed, configuration), extraction, cancellation, the unsandboxed mode, and
 * infrastructure failures reported as env_error, never as the model's fault. */
import t from 'tap';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chooseMode } from '../sandbox/isolation.js';
import { RwLock } from '../sandbox/rwlock.js';
import { ensureTaskBuild } from '../sandbox/toolchain.js';
import { cTask, getTask, loadTaskSet, solutionFiles } from '../tasks/loader.js';
import { builtin, evaluator, hacks } from './helpers.js';

const task = getTask(builtin(), 'vector_add');
const good = readFileSync(solutionFiles(task)[0]!, 'utf8');

t.test('identical code on the same task, seed and configuration is evaluated once', async (t) => {
  const ev = evaluator({ cacheSize: 10 });
  t.teardown(() => ev.close());
  const a = await ev.evaluate({ task, code: good, seed: 5 });
  const b = await ev.evaluate({ task, code: good, seed: 5 });
  const c = await ev.evaluate({ task, code: good, seed: 6 });
  t.equal(a.cached, false);
  t.equal(b.cached, true);
  t.equal(b.outcome, a.outcome);
  t.equal(b.speedup, a.speedup);
  t.equal(c.cached, false, 'another seed is another evaluation');
});

t.test('a reply is searched for code; a reply without code runs nothing', async (t) => {
  const ev = evaluator();
  t.teardown(() => ev.close());
  const r = await ev.evaluate({ task, reply: `Here is my kernel:\n\`\`\`c\n${good}\`\`\`\n`, seed: 1 });
  t.equal(r.outcome, 'ok');
  const none = await ev.evaluate({ task, reply: 'I would rather not.', seed: 1 });
  t.equal(none.outcome, 'no_code');
  t.same(
    none.stages.map((s) => s.status),
    ['failed', 'skipped', 'skipped', 'skipped', 'skipped', 'skipped'],
  );
});

t.test('a cancelled evaluation stops before running', async (t) => {
  const ev = evaluator();
  t.teardown(() => ev.close());
  const ac = new AbortController();
  ac.abort();
  await t.rejects(ev.evaluate({ task, code: good, seed: 1 }, { signal: ac.signal }), { code: 'cancelled' });
});

t.test('without bubblewrap nothing runs unless asked, and then every result says so', async (t) => {
  process.env.ANVIL_BWRAP = '/nonexistent/bwrap';
  t.teardown(() => delete process.env.ANVIL_BWRAP);
  t.throws(() => chooseMode(false), { code: 'sandbox_unavailable' });
  t.equal(chooseMode(true), 'none');
  const ev = evaluator({ allowUnsandboxed: true });
  t.teardown(() => ev.close());
  const r = await ev.evaluate({ task, code: good, seed: 1 });
  t.equal(r.outcome, 'ok', r.message);
  t.equal(r.env.sandbox, 'none');
  t.ok(r.flags.some((f) => f.kind === 'unsandboxed'));
});

t.test("a reference that fails is an infrastructure error, not the candidate's", async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-broken-'));
  cpSync(task.dir, path.join(dir, 'vector_add'), { recursive: true });
  writeFileSync(
    path.join(dir, 'vector_add', 'reference.c'),
    'void solve(const float *a, const float *b, float *out, int n) { *(volatile int *)0 = n; }\n',
  );
  writeFileSync(
    path.join(dir, 'manifest.json'),
    JSON.stringify({ id: 'broken', backend: 'c', splits: { train: ['vector_add'], eval: [] } }),
  );
  const ev = evaluator();
  t.teardown(() => ev.close());
  const r = await ev.evaluate({ task: getTask(loadTaskSet(dir), 'vector_add'), code: good, seed: 1 });
  t.equal(r.outcome, 'env_error', r.message);
  t.equal(r.correct, false);
});

t.test(
  "a sandbox that does not start is the environment's failure; a compiler quoting a sandbox's words is the candidate's",
  async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-nostart-'));
    cpSync(task.dir, path.join(dir, 'vector_add'), { recursive: true });
    // A task of its own (another digest), so that breaking its build touches no other test's.
    writeFileSync(
      path.join(dir, 'vector_add', 'reference.c'),
      `${readFileSync(path.join(task.dir, 'reference.c'), 'utf8')}\n/* ${dir} */\n`,
    );
    writeFileSync(
      path.join(dir, 'manifest.json'),
      JSON.stringify({ id: 'nostart', backend: 'c', splits: { train: ['vector_add'], eval: [] } }),
    );
    const own = getTask(loadTaskSet(dir), 'vector_add');
    const ev = evaluator();
    t.teardown(async () => {
      await ev.close();
      rmSync(ensureTaskBuild(cTask(own)).dir, { recursive: true, force: true });
    });
    t.equal((await ev.evaluate({ task: own, code: good, seed: 1 })).outcome, 'ok');
    // The task's header, bound into the compiler's sandbox, is gone: bwrap cannot start it.
    rmSync(ensureTaskBuild(cTask(own)).header);
    const r = await ev.evaluate({ task: own, code: good, seed: 2 });
    t.equal(r.outcome, 'env_error', r.message);
    t.match(r.message, /sandbox failed to start the compiler: bwrap: /);
    const hack = hacks().find((h) => h.name === 'sandbox_error_text.c')!;
    const quoted = await ev.evaluate({ task, code: hack.code, seed: 2 });
    t.equal(
      quoted.outcome,
      'compile_error',
      `the compiler's "bwrap: …" and "anvil-launch: …" are the candidate's: ${quoted.message}`,
    );
  },
);

t.test('timing never overlaps other work of the same evaluator', async (t) => {
  const lock = new RwLock();
  let shared = 0;
  let exclusive = 0;
  const overlaps: string[] = [];
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const work = [];
  for (let i = 0; i < 20; i++) {
    work.push(
      i % 3 === 0
        ? lock.exclusive(async () => {
            exclusive++;
            if (shared || exclusive > 1) overlaps.push(`exclusive ${i}`);
            await sleep(2);
            exclusive--;
          })
        : lock.shared(async () => {
            shared++;
            if (exclusive) overlaps.push(`shared ${i}`);
            await sleep(3);
            shared--;
          }),
    );
  }
  await Promise.all(work);
  t.same(overlaps, []);
});

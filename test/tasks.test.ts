/** The built-in task set: the ids and signatures the issue fixes, splits,
 * shapes, and prompts that never show hidden or timing shapes. */
import t from 'tap';
import { cpSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { argValues, getTask, loadTaskSet } from '../tasks/loader.js';
import { taskPrompt } from '../tasks/prompt.js';
import { builtin } from './helpers.js';

const REQUIRED: Record<string, string> = {
  vector_add: 'void solve(const float *a, const float *b, float *out, int n)',
  saxpy: 'void solve(float alpha, const float *x, const float *y, float *out, int n)',
  sum_reduce: 'void solve(const float *x, float *out, int n)',
  softmax_rows: 'void solve(const float *x, float *y, int rows, int cols)',
  layernorm_rows: 'void solve(const float *x, const float *gamma, const float *beta, float *y, int rows, int cols)',
  sgemm: 'void solve(const float *A, const float *B, float *C, int M, int N, int K)',
  transpose: 'void solve(const float *x, float *y, int rows, int cols)',
  prefix_sum: 'void solve(const float *x, float *y, int n)',
};

t.test('builtin-c holds at least 12 tasks, the required ones with their signatures', async (t) => {
  const set = builtin();
  t.ok(set.tasks.size >= 12);
  for (const [id, sig] of Object.entries(REQUIRED)) t.equal(getTask(set, id).signature, sig, id);
  for (const id of ['conv2d', 'gemm_bias_relu', 'attention_head', 'rmsnorm_rows']) t.ok(set.tasks.has(id), id);
  t.same(getTask(set, 'gemm_bias_relu').libOps, ['lib_sgemm', 'lib_add_bias', 'lib_relu']);
  t.ok(getTask(set, 'attention_head').libOps.length > 0);
});

t.test('train and eval splits cover every task once', async (t) => {
  const set = builtin();
  const { train, eval: ev } = set.manifest.splits;
  t.ok(train.length > 0 && ev.length > 0);
  t.same([...train, ...ev].sort(), [...set.tasks.keys()].sort());
});

t.test('every task has hidden correctness shapes, timing shapes, FLOP and byte counts', async (t) => {
  for (const task of builtin().tasks.values()) {
    t.ok(
      task.correctness.some((c) => c.visible),
      `${task.id} shows a shape`,
    );
    t.ok(
      task.correctness.some((c) => !c.visible),
      `${task.id} hides a shape`,
    );
    t.ok(task.timing.length >= 1);
    for (const p of task.timing)
      t.ok(
        argValues(task, p).every((v, i) => task.args[i]!.kind === 'f32' || v > 0),
        task.id,
      );
    t.ok(task.flops && task.bytes);
  }
});

t.test('prompts show the signature and visible shapes, never hidden or timing shapes', async (t) => {
  for (const task of builtin().tasks.values()) {
    const prompt = taskPrompt(task, 2);
    t.ok(prompt.includes(task.signature), task.id);
    const fmt = (p: Record<string, number>) =>
      Object.entries(p)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ');
    const shows = (p: Record<string, number>) => new RegExp(`[:;] ${fmt(p)}[;.]`).test(prompt);
    for (const c of task.correctness) t.equal(shows(c.params), c.visible, `${task.id} ${fmt(c.params)}`);
    for (const p of task.timing) t.notOk(shows(p), `${task.id} timing shape`);
    for (const p of task.timing)
      for (const v of Object.values(p)) t.notOk(prompt.includes(String(v)) && v > 4096, `${task.id} never names ${v}`);
  }
});

t.test('a broken task set is refused with a clear error', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-taskset-'));
  cpSync(path.join(builtin().dir, 'vector_add'), path.join(dir, 'vector_add'), { recursive: true });
  writeFileSync(
    path.join(dir, 'manifest.json'),
    JSON.stringify({ id: 'x', backend: 'c', splits: { train: ['vector_add'], eval: [] } }),
  );
  t.equal(loadTaskSet(dir).tasks.size, 1);
  const task = JSON.parse(readFileSync(path.join(dir, 'vector_add', 'task.json'), 'utf8'));
  mkdirSync(path.join(dir, 'bad'));
  writeFileSync(
    path.join(dir, 'bad', 'task.json'),
    JSON.stringify({
      ...task,
      id: 'bad',
      args: [
        { name: 'a', kind: 'in', size: 'm', gen: { dist: 'uniform', a: 0, b: 1 } },
        { name: 'o', kind: 'out', size: 'n' },
      ],
    }),
  );
  writeFileSync(path.join(dir, 'bad', 'reference.c'), '');
  t.throws(() => loadTaskSet(dir), { code: 'invalid_task', message: /unknown name m/ });
  t.throws(() => loadTaskSet('/nonexistent/set'), { code: 'unknown_taskset' });
  t.throws(() => getTask(builtin(), 'nope'), { code: 'unknown_task' });
});

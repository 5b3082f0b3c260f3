/** `anvil tasks` and `anvil eval` as a user runs them. */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../tasks/paths.js';

const cli = path.join(PACKAGE_ROOT, 'dist', 'scripts', 'anvil.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
const tmp = mkdtempSync(path.join(os.tmpdir(), 'anvil-cli-'));
const file = (name: string, text: string) => {
  const p = path.join(tmp, name);
  writeFileSync(p, text);
  return p;
};
const solution = path.join(PACKAGE_ROOT, 'tasks', 'builtin-c', 'vector_add', 'solutions', 'openmp_simd.c');

t.test('anvil tasks lists the built-in set', async (t) => {
  const r = run('tasks');
  t.equal(r.status, 0);
  t.match(r.stdout, /builtin-c \(c\): \d+ tasks/);
  t.match(r.stdout, /sgemm/);
  const json = JSON.parse(run('tasks', '--json').stdout);
  t.ok(json.length >= 12);
});

t.test('anvil eval --json prints exactly one EvalResult object', async (t) => {
  const r = run('eval', '--task', 'vector_add', '--candidate', solution, '--json');
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.equal(lines.length, 1);
  const result = JSON.parse(lines[0]!);
  t.equal(result.outcome, 'ok');
  t.equal(result.correct, true);
  t.type(result.speedup, 'number');
  t.type(result.profileShare, 'number');
  t.same(result.flags, []);
  t.same(
    result.stages.map((s: { name: string }) => s.name),
    ['extract', 'static', 'compile', 'correctness', 'timing', 'profile'],
  );
  for (const s of result.stages) t.type(s.ms, 'number');
});

t.test('a reply is accepted and its code extracted; no code is an outcome, not a crash', async (t) => {
  const noCode = run('eval', '--task', 'vector_add', '--reply', file('reply.txt', 'I refuse.'), '--json');
  t.equal(noCode.status, 0);
  t.equal(JSON.parse(noCode.stdout).outcome, 'no_code');
  const human = run(
    'eval',
    '--task',
    'vector_add',
    '--reply',
    file(
      'bad.txt',
      '```c\nvoid solve(const float *a, const float *b, float *out, int n) { out[0] = a[0] + b[0] }\n```',
    ),
  );
  t.equal(human.status, 0);
  t.match(human.stdout, /outcome\s+compile_error/);
  t.match(human.stdout, /compile log:[\s\S]*error/);
});

t.test('a candidate without solve is told so', async (t) => {
  const r = run(
    'eval',
    '--task',
    'vector_add',
    '--candidate',
    file('nosolve.c', 'void add(float *x) { x[0] = 1; }\n'),
    '--json',
  );
  t.equal(r.status, 0);
  const result = JSON.parse(r.stdout);
  t.equal(result.outcome, 'compile_error');
  t.match(result.message, /no function `solve`/);
});

t.test('bad input gets a clear error and a non-zero exit', async (t) => {
  const unknown = run('eval', '--task', 'nope', '--candidate', solution);
  t.equal(unknown.status, 1);
  t.match(unknown.stderr, /unknown_task.*no task "nope"/);
  const missing = run('eval', '--task', 'vector_add', '--candidate', path.join(tmp, 'missing.c'));
  t.equal(missing.status, 1);
  t.match(missing.stderr, /file_not_found/);
  const big = run(
    'eval',
    '--task',
    'vector_add',
    '--candidate',
    file('big.c', `void solve(void) {}\n/*${'x'.repeat(300 * 1024)}*/\n`),
  );
  t.equal(big.status, 1);
  t.match(big.stderr, /code_too_large/);
  const usage = run('eval', '--task', 'vector_add');
  t.equal(usage.status, 2);
  t.match(usage.stderr, /exactly one of --candidate FILE or --reply FILE/);
  t.equal(run('frobnicate').status, 2);
});

t.test('every command has --help; usage errors are one line and the usage, never a stack trace', async (t) => {
  for (const cmd of ['tasks', 'eval', 'serve', 'worker', 'demo', 'export', 'report']) {
    const r = run(cmd, '--help');
    t.equal(r.status, 0, `${cmd} --help`);
    t.match(r.stdout, new RegExp(`^usage: anvil ${cmd} `), `${cmd} --help prints its usage`);
  }
  const cases: Array<[string[], RegExp]> = [
    [['serve', '--token'], /^anvil: Option '--token <value>' argument missing/],
    [['export', '--bogus'], /^anvil: Unknown option '--bogus'/],
    [['export', '--logs', tmp], /^anvil: export needs --logs DIR and --out FILE/],
    [['worker'], /^anvil: worker needs --redis/],
    [['report', 'stray'], /^anvil: .*positional/i],
  ];
  for (const [args, first] of cases) {
    const r = run(...args);
    t.equal(r.status, 2, args.join(' '));
    const lines = r.stderr.trim().split('\n');
    t.match(lines[0], first);
    t.equal(lines[1], '', 'then a blank line');
    t.match(lines[2], new RegExp(`^usage: anvil ${args[0]} `), 'then the usage of that command');
    t.notMatch(r.stderr, /^\s+at /m, 'no stack trace');
  }
});

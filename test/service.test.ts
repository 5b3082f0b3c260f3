/** One evaluation service, configured in one place: each backend's settings reach its
 * evaluator through `--config` (`anvil serve` and `anvil eval` alike), and a server
 * advertises in `hello` and accepts in `reset` the backends it actually serves. The
 * torch backend runs on the CPU here (torch 1.13), as in test/torch.test.ts. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import { GOOD_VECTOR_ADD, startServer, Wire } from './wire.js';

const cli = path.join(PACKAGE_ROOT, 'dist', 'scripts', 'anvil.js');
const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-service-'));
const candidate = path.join(PACKAGE_ROOT, 'test', 'torch', 'gelu_cpu_ext.py');
/** Torch settings no default has: at most 3 timed calls per model (the default takes at least 10). */
const configFile = path.join(dir, 'config.json');
writeFileSync(configFile, JSON.stringify({ torch: { minReps: 2, maxReps: 3, timingBudgetMs: 300, trials: 3 } }));

type Timed = {
  outcome: string;
  message: string;
  timing: { shapes: { candidate: { reps: number }; reference: { reps: number } }[] } | null;
};

function repsOf(r: Timed): number[] {
  return (r.timing?.shapes ?? []).flatMap((s) => [s.candidate.reps, s.reference.reps]);
}

t.test(
  'anvil serve --config on builtin-torch: the torch settings reach the evaluator; hello and reset speak torch',
  async (t) => {
    const child = spawn(
      process.execPath,
      [cli, 'serve', '--port', '0', '--taskset', 'builtin-torch', '--log-dir', dir, '--config', configFile],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    t.teardown(() => void child.kill('SIGKILL'));
    const line: string = await new Promise((resolve) => {
      let buf = '';
      child.stdout.on('data', (d) => {
        buf += d;
        if (buf.includes('\n')) resolve(buf);
      });
    });
    const url = /(ws:\/\/\S+\/v1\/ws)/.exec(line)![1]!;
    const w = await Wire.open(url);
    t.teardown(() => w.close());
    const hello = await w.call({ id: 1, op: 'hello', protocol: 1 });
    t.same(hello.backends, ['torch'], 'hello names the backend served');
    const ok = await w.call({ id: 2, op: 'reset', task: 'gelu', options: { backend: 'torch' } });
    t.equal(ok.ok, true, JSON.stringify(ok.error));
    t.equal(ok.episodes[0].info.task, 'gelu');
    const wrong = await w.call({ id: 3, op: 'reset', task: 'gelu', options: { backend: 'c' } });
    t.equal(wrong.ok, false);
    t.equal(wrong.error.code, 'invalid_message');
    t.match(wrong.error.message, /builtin-torch is of the torch backend, not c; served: torch/);

    const res = await fetch(url.replace(/^ws/, 'http').replace('/v1/ws', '/v1/evaluate'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ task: 'gelu', code: readFileSync(candidate, 'utf8') }),
    });
    const r = (await res.json()) as Timed;
    t.equal(r.outcome, 'ok', r.message);
    const reps = repsOf(r);
    t.ok(reps.length > 0, 'timed');
    t.ok(
      reps.every((n) => n >= 2 && n <= 3),
      `every model timed 2 or 3 times, as configured: ${reps}`,
    );
  },
);

t.test(
  'anvil eval --config: the same file sets the torch evaluation; a bad setting is a typed error naming it',
  async (t) => {
    const run = (...args: string[]) =>
      spawnSync(
        process.execPath,
        [cli, 'eval', '--taskset', 'builtin-torch', '--task', 'gelu', '--candidate', candidate, '--json', ...args],
        { encoding: 'utf8', timeout: 300_000 },
      );
    const r = run('--config', configFile);
    t.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout) as Timed;
    t.equal(result.outcome, 'ok', result.message);
    t.ok(
      repsOf(result).every((n) => n <= 3),
      `at most 3 timed calls: ${repsOf(result)}`,
    );
    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ torch: { maxReps: 1 } }));
    const refused = run('--config', bad);
    t.equal(refused.status, 1);
    t.match(refused.stderr, /^anvil: error \[invalid_argument\]: configuration: torch\.maxReps: /);
  },
);

t.test('a server on builtin-c advertises c, accepts it in reset and refuses torch with a clear error', async (t) => {
  const { server, url } = await startServer();
  t.teardown(() => server.close());
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  t.same((await w.call({ id: 1, op: 'hello', protocol: 1 })).backends, ['c']);
  const ok = await w.call({ id: 2, op: 'reset', task: 'vector_add', options: { backend: 'c' } });
  t.equal(ok.ok, true);
  const step = await w.call({ id: 3, op: 'step', episode: ok.episodes[0].episode, action: GOOD_VECTOR_ADD }, 120_000);
  t.equal(step.info.outcome, 'ok');
  const wrong = await w.call({ id: 4, op: 'reset', task: 'vector_add', options: { backend: 'torch' } });
  t.equal(wrong.error.code, 'invalid_message');
  t.match(wrong.error.message, /builtin-c is of the c backend, not torch; served: c/);
});

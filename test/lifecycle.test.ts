/** Server lifecycle details: dead sockets are reaped, infrastructure failures
 * reach the trainer masked, and the log rotates by size. */
import t from 'tap';
import { cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { builtin } from './helpers.js';
import { GOOD_VECTOR_ADD, startServer, Wire } from './wire.js';

t.test('a socket that stops answering pings is closed; its session waits for a resume', async (t) => {
  const { server, url } = await startServer({ pingIntervalMs: 100 });
  t.teardown(() => server.close());
  const ws = new WebSocket(url, { autoPong: false });
  await new Promise((r) => ws.once('open', r));
  ws.send(JSON.stringify({ id: 1, op: 'hello', protocol: 1 }));
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  const t0 = Date.now();
  await closed;
  t.ok(Date.now() - t0 < 2000, `reaped after ${Date.now() - t0} ms`);
  t.equal(server.gym.sessions.size, 1, 'the session is kept for a resume');
});

t.test('an infrastructure failure is masked, earns nothing and does not use up a turn', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-broken-set-'));
  const task = builtin().tasks.get('vector_add')!;
  cpSync(task.dir, path.join(dir, 'vector_add'), { recursive: true });
  writeFileSync(
    path.join(dir, 'vector_add', 'reference.c'),
    'void solve(const float *a, const float *b, float *out, int n) { *(volatile int *)0 = n; }\n',
  );
  writeFileSync(
    path.join(dir, 'manifest.json'),
    JSON.stringify({ id: 'broken', backend: 'c', splits: { train: ['vector_add'], eval: [] }, maxTurns: 2 }),
  );
  const { server, url, logDir } = await startServer({ taskset: dir });
  t.teardown(() => server.close());
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  await w.call({ id: 1, op: 'hello', protocol: 1 });
  const ep = (await w.call({ id: 2, op: 'reset', task: 'vector_add' })).episodes[0].episode;
  const r = await w.call({ id: 3, op: 'step', episode: ep, action: GOOD_VECTOR_ADD });
  t.equal(r.reason, 'env_error');
  t.equal(r.info.mask, true);
  t.equal(r.reward, 0);
  t.same(r.info.components, {});
  t.equal(r.terminated || r.truncated, false);
  t.match(r.observation.messages[0].content, /unrelated to your code/);
  const st = await w.call({ id: 4, op: 'state', episode: ep });
  t.equal(st.turns.length, 0);
  t.equal(st.state, 'ready', 'the same action may be sent again');
  const rec = readFileSync(path.join(logDir, readdirSync(logDir)[0]!), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.equal(rec[0].mask, true);
  t.equal(rec[0].reason, 'env_error');
});

t.test('the log rotates by size and loses no record', async (t) => {
  const { server, url, logDir } = await startServer({ logRotateBytes: 4096 });
  t.teardown(() => server.close());
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  await w.call({ id: 1, op: 'hello', protocol: 1 });
  const eps = (await w.call({ id: 2, op: 'reset', task: 'vector_add', group: { size: 6 } })).episodes;
  for (const [i, e] of eps.entries())
    await w.call({ id: 10 + i, op: 'step', episode: e.episode, action: 'no code, just words' });
  const files = readdirSync(logDir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort();
  t.ok(files.length >= 2, `${files.length} files`);
  const records = files
    .flatMap((f) => readFileSync(path.join(logDir, f), 'utf8').trim().split('\n'))
    .map((l) => JSON.parse(l));
  t.same(records.map((r) => r.episode).sort(), eps.map((e: { episode: string }) => e.episode).sort());
});

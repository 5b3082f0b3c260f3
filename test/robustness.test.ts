/** The server under abuse and failure: 10,000 malformed frames, reconnect and
 * resume, a retried step never evaluated twice, and a log that survives
 * SIGKILL. */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Packr } from 'msgpackr';
import { AnvilClient } from '../clients/ts/client.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import { GOOD_VECTOR_ADD, startServer, Wire } from './wire.js';

v8.setFlagsFromString('--expose_gc');
const gc = vm.runInNewContext('gc') as () => void;
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

function readLog(dir: string): Array<Record<string, any>> {
  const out = [];
  for (const f of readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort())
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) if (line) out.push(JSON.parse(line));
  return out;
}

t.test('10,000 malformed frames: every one answered, the server keeps serving, memory returns', async (t) => {
  const { server, url } = await startServer();
  t.teardown(() => server.close());
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  await w.call({ id: 'h', op: 'hello', protocol: 1 });
  const r = await w.call({ id: 'r', op: 'reset', task: 'vector_add' });
  const closedEp = r.episodes[0].episode;
  await w.call({ id: 'c', op: 'close', episode: closedEp });
  const heap = () => {
    gc();
    return process.memoryUsage().heapUsed;
  };
  let rnd = 12345;
  const rand = () => (rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const kinds: Array<() => [Buffer | string, boolean]> = [
    () => [Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 200) }, () => Math.floor(rand() * 256))), true],
    () => [packr.pack({ id: 1, op: 'step', episode: closedEp, action: 'x' }).subarray(0, 5), true],
    () => ['{"id": 1, "op": "reset", "seed": ', false],
    () => [JSON.stringify({ id: rand(), op: 'reset' }), false],
    () => [JSON.stringify({ id: [1], op: 'ping' }), false],
    () => [JSON.stringify({ id: 'u', op: `op${Math.floor(rand() * 1e6)}` }), false],
    () => [JSON.stringify({ id: 's', op: 'step', episode: closedEp, action: GOOD_VECTOR_ADD }), false],
    () => [JSON.stringify({ id: 't', op: 'step', episode: 42, action: null }), false],
    () => [packr.pack({ id: 'm', op: 'reset', group: { size: -1 } }), true],
    () => [JSON.stringify(['not', 'an', 'object']), false],
    () => ['x'.repeat(1024 * 1024 + 10), false],
    () => [packr.pack({ id: 'x', op: 'hello', protocol: 2 }), true],
  ];
  const N = 10_000;
  const before = heap();
  const start = w.received.length;
  for (let i = 0; i < N; i++) {
    const [data, binary] = kinds[i % kinds.length]!();
    w.sendRaw(data, binary);
    if (i % 500 === 499) await w.call({ id: `p${i}`, op: 'ping' });
  }
  const pong = await w.call({ id: 'final', op: 'ping' });
  t.equal(pong.pong, true, 'still serving');
  const answers = w.received.slice(start).filter((f) => f.ok === false);
  t.equal(answers.length, N, 'one typed error per malformed frame');
  const codes = new Set(answers.map((f) => f.error.code));
  t.same([...codes].sort(), ['invalid_message', 'too_large', 'unknown_episode', 'unknown_op'].sort());
  t.equal(w.closed, false);
  w.received.length = 0;
  const grown = heap() - before;
  t.ok(grown < 16 * 1024 * 1024, `heap grew by ${(grown / 1024 / 1024).toFixed(1)} MiB`);
  const ok = await w.call({ id: 'after', op: 'reset', task: 'vector_add' });
  t.equal(ok.ok, true);
});

t.test('a reconnecting client resumes its session and gets a result that finished meanwhile', async (t) => {
  const { server, url, logDir } = await startServer();
  t.teardown(() => server.close());
  const a = await Wire.open(url, 'msgpack');
  const hello = await a.call({ id: 1, op: 'hello', protocol: 1 });
  const ep = (await a.call({ id: 2, op: 'reset', task: 'vector_add', seed: 77 })).episodes[0].episode;
  a.send({ id: 3, op: 'step', episode: ep, action: GOOD_VECTOR_ADD });
  await a.next((f) => f.id === 3 && f.event === 'progress');
  a.ws.terminate(); // the network drops; the step goes on
  await new Promise((r) => setTimeout(r, 200));
  t.equal(server.gym.sessions.size, 1, 'the session outlives its connection');
  const b = await Wire.open(url, 'msgpack');
  t.teardown(() => b.close());
  const again = await b.call({ id: 10, op: 'hello', protocol: 1, resume: hello.resumeToken });
  t.equal(again.resumed, true);
  t.equal(again.session, hello.session);
  b.send({ id: 3, op: 'step', episode: ep, action: GOOD_VECTOR_ADD }); // the client retries the same step
  const result = await b.next((f) => f.id === 3 && f.event === 'result');
  t.equal(result.info.outcome, 'ok');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(b.received.filter((f) => f.id === 3 && f.event === 'result').length, 1, 'answered once');
  const state = await b.call({ id: 11, op: 'state', episode: ep });
  t.equal(state.turns.length, 1, 'evaluated and counted once');
  t.equal(readLog(logDir).filter((r) => r.episode === ep).length, 1, 'logged once');
  const stale = await Wire.open(url);
  t.teardown(() => stale.close());
  const fresh = await stale.call({ id: 1, op: 'hello', protocol: 1, resume: 'no-such-token' });
  t.equal(fresh.resumed, false, 'an unknown resume token starts a new session');
});

t.test('the TypeScript client reconnects by itself and completes its step', async (t) => {
  const { server, url } = await startServer();
  t.teardown(() => server.close());
  const client = await AnvilClient.connect(url);
  t.teardown(() => client.close());
  const [ep] = await client.reset({ task: 'vector_add', seed: 5 });
  const stages: string[] = [];
  const pending = client.step(ep!.episode, GOOD_VECTOR_ADD, { onProgress: (p) => stages.push(p.stage) });
  setTimeout(() => client.dropConnection(), 50);
  const r = await pending;
  t.equal(r.info.outcome, 'ok');
  t.ok(stages.includes('queued'));
  t.equal(((await client.state(ep!.episode)).turns as unknown[]).length, 1);
  const group = await client.reset({ task: 'sum_reduce', group: { size: 4 } });
  t.equal(new Set(group.map((g) => g.group)).size, 1);
  t.equal(new Set(group.map((g) => g.info.seed)).size, 1, 'a group shares task and seed');
});

/** `anvil serve` in a process of its own, writing its log to `logDir`, once it listens. */
async function boot(logDir: string): Promise<{ child: ChildProcess; url: string }> {
  const cli = path.join(PACKAGE_ROOT, 'dist', 'scripts', 'anvil.js');
  const child = spawn(process.execPath, [cli, 'serve', '--port', '0', '--log-dir', logDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line: string = await new Promise((resolve) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) resolve(buf);
    });
  });
  return { child, url: /(ws:\/\/\S+\/v1\/ws)/.exec(line)![1]! };
}

const RECORD_KEYS = [
  'run',
  'episode',
  'group',
  'index',
  'task',
  'taskVersion',
  'turn',
  'observation',
  'action',
  'meta',
  'eval',
  'reward',
  'components',
  'terminated',
  'truncated',
  'mask',
  'timings',
  'serverVersion',
];

t.test('a server killed with SIGKILL loses no answered step; a restart writes a new file', async (t) => {
  const logDir = mkdtempSync(path.join(os.tmpdir(), 'anvil-kill-'));
  const first = await boot(logDir);
  const w = await Wire.open(first.url);
  await w.call({ id: 1, op: 'hello', protocol: 1 });
  const eps = (await w.call({ id: 2, op: 'reset', task: 'vector_add', group: { size: 3 } })).episodes;
  let answered = 0;
  for (const [i, e] of eps.entries()) {
    const r = await w.call(
      { id: 10 + i, op: 'step', episode: e.episode, action: i === 1 ? 'no code' : GOOD_VECTOR_ADD },
      120_000,
    );
    if (r.event === 'result') answered++;
  }
  first.child.kill('SIGKILL');
  await new Promise((r) => first.child.once('exit', r));
  const files = readdirSync(logDir);
  const records = readLog(logDir);
  t.equal(records.length, answered, 'every answered step is on disk');
  for (const r of records) for (const k of RECORD_KEYS) t.ok(k in r, `record has ${k}`);
  const before = files.map((f) => readFileSync(path.join(logDir, f), 'utf8'));
  const w2 = await restartAndStepOnce(logDir);
  const after = readdirSync(logDir);
  t.equal(after.length, files.length + 1, 'the restarted server wrote a new file');
  t.same(
    files.map((f) => readFileSync(path.join(logDir, f), 'utf8')),
    before,
    'old files untouched',
  );
  t.equal(readLog(logDir).length, answered + 1);
  w.close();
  w2.close();
});

/** A second server on the same log folder answers one step, then is killed too. */
async function restartAndStepOnce(logDir: string): Promise<Wire> {
  const second = await boot(logDir);
  const w2 = await Wire.open(second.url);
  await w2.call({ id: 1, op: 'hello', protocol: 1 });
  const ep = (await w2.call({ id: 2, op: 'reset', task: 'vector_add' })).episodes[0].episode;
  await w2.call({ id: 3, op: 'step', episode: ep, action: 'no code' });
  second.child.kill('SIGKILL');
  await new Promise((r) => second.child.once('exit', r));
  return w2;
}

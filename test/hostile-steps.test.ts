/** A client with the token that breaks the rules of a step on purpose: meta nested past
 * any stack, a request id used again for another episode, a close in the same write as
 * its step, and one-shot evaluations beside the trainers' steps. The server answers each
 * with a typed error (never `internal`), evaluates and logs every step at most once, and
 * keeps its quotas. */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { GOOD_VECTOR_ADD, LOOPING_VECTOR_ADD, startServer, Wire } from './wire.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

function records(logDir: string): any[] {
  return readdirSync(logDir).flatMap((f) =>
    readFileSync(path.join(logDir, f), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l)),
  );
}

async function session(url: string): Promise<Wire> {
  const w = await Wire.open(url);
  if (!(await w.call({ id: 'h', op: 'hello', protocol: 1 })).ok) throw new Error('hello failed');
  return w;
}

t.test('meta nested past the stack is invalid_message at both doors, never internal', async (t) => {
  const { server, url } = await startServer();
  t.teardown(() => server.close());
  const w = await session(url);
  t.teardown(() => w.close());
  const ep = (await w.call({ id: 1, op: 'reset', task: 'vector_add', seed: 1 })).episodes[0].episode;
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  w.sendRaw(`{"id":2,"op":"step","episode":"${ep}","action":${JSON.stringify(GOOD_VECTOR_ADD)},"meta":${deep}}`, false);
  const json = await w.next((f) => f.id === 2);
  t.equal(json.error?.code, 'invalid_message', 'a JSON frame');
  t.match(json.error.message, /plain JSON data nesting at most 64 levels/);
  let nested: unknown = 1;
  for (let i = 0; i < 100; i++) nested = [nested];
  const mw = await Wire.open(url, 'msgpack');
  t.teardown(() => mw.close());
  await mw.call({ id: 'h', op: 'hello', protocol: 1 });
  const mep = (await mw.call({ id: 1, op: 'reset', task: 'vector_add', seed: 1 })).episodes[0].episode;
  mw.sendRaw(packr.pack({ id: 3, op: 'step', episode: mep, action: GOOD_VECTOR_ADD, meta: nested }), true);
  t.equal((await mw.next((f) => f.id === 3)).error?.code, 'invalid_message', 'a MessagePack frame');
  // MessagePack's extension types decode to values that are not JSON: a BigInt made JSON.stringify throw.
  const ext = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: true });
  for (const [i, meta] of [2n ** 70n, new Set([1]), new Date(0), /a+/].entries()) {
    mw.sendRaw(ext.pack({ id: `x${i}`, op: 'step', episode: mep, action: GOOD_VECTOR_ADD, meta: { v: meta } }), true);
    t.equal((await mw.next((f) => f.id === `x${i}`)).error?.code, 'invalid_message', `meta holding a ${typeof meta}`);
  }

  const oe = new WebSocket(url.replace('/v1/ws', '/ws'));
  t.teardown(() => oe.close());
  const got: any[] = [];
  oe.on('message', (d) => got.push(JSON.parse(d.toString())));
  await new Promise((r) => oe.once('open', r));
  oe.send(JSON.stringify({ type: 'reset', data: { task: 'vector_add', seed: 1 } }));
  oe.send(`{"type":"step","data":{"message":"x","metadata":{"a":${deep}}}}`);
  while (got.length < 2) await new Promise((r) => setTimeout(r, 20));
  t.equal(got[1].data.code, 'VALIDATION_ERROR', "OpenEnv's door");
  const ok = await w.call({ id: 4, op: 'step', episode: ep, action: GOOD_VECTOR_ADD, meta: { policy: [[1]] } });
  t.equal(ok.ok, true, 'a shallow meta is taken, and the server goes on');
});

t.test('a request id used again for another episode is refused; a retry is answered once', async (t) => {
  const { server, url, logDir } = await startServer();
  t.teardown(() => server.close());
  const w = await session(url);
  t.teardown(() => w.close());
  const r = await w.call({ id: 1, op: 'reset', task: 'vector_add', seed: 1, group: { size: 2 } });
  const [a, b] = r.episodes.map((e: { episode: string }) => e.episode);
  w.send({ id: 'X', op: 'step', episode: a, action: GOOD_VECTOR_ADD });
  w.send({ id: 'X', op: 'step', episode: b, action: GOOD_VECTOR_ADD });
  const refused = await w.next((f) => f.id === 'X' && f.ok === false);
  t.equal(refused.error.code, 'invalid_message');
  t.match(refused.error.message, /used for another step/);
  const first = await w.next((f) => f.id === 'X' && f.event === 'result');
  t.equal(first.episode, a);
  // The client lost the answer and sends the step again: the same answer, not a second turn.
  w.received.length = 0;
  const again = await w.call({ id: 'X', op: 'step', episode: a, action: GOOD_VECTOR_ADD });
  t.equal(again.info.turn, 0);
  w.received.length = 0;
  t.equal((await w.call({ id: 'X', op: 'step', episode: b, action: GOOD_VECTOR_ADD })).error?.code, 'invalid_message');
  t.equal(records(logDir).filter((x) => x.episode === a).length, 1, 'one record of the one step');
  t.equal(records(logDir).filter((x) => x.episode === b).length, 0);
});

t.test('a close in the same write as its step: cancelled, and the quota holds', async (t) => {
  const { server, url } = await startServer({ maxEpisodesPerSession: 2 });
  t.teardown(() => server.close());
  const w = await session(url);
  t.teardown(() => w.close());
  // Long enough to be extracted in a turn of its own; cached after the first step.
  const long = `${GOOD_VECTOR_ADD}\n${'padding '.repeat(3000)}`;
  const warm = (await w.call({ id: 'w', op: 'reset', task: 'vector_add', seed: 3, options: { maxTurns: 1 } }))
    .episodes[0].episode;
  t.equal((await w.call({ id: 'ws', op: 'step', episode: warm, action: long })).info.mask, false);
  const socket = (w.ws as unknown as { _socket: import('node:net').Socket })._socket;
  for (let i = 0; i < 4; i++) {
    const ep = (await w.call({ id: `r${i}`, op: 'reset', task: 'vector_add', seed: 3, options: { maxTurns: 1 } }))
      .episodes[0].episode;
    socket.cork();
    w.send({ id: `s${i}`, op: 'step', episode: ep, action: long });
    w.send({ id: `c${i}`, op: 'close', episode: ep });
    socket.uncork();
    const step = await w.next((f) => f.id === `s${i}` && f.event === 'result');
    t.equal(step.reason, 'cancelled', 'the step of a closed episode is cancelled, not counted');
    t.equal(step.info.mask, true);
  }
  const admitted = [];
  for (let i = 0; i < 4; i++) admitted.push((await w.call({ id: `q${i}`, op: 'reset', task: 'vector_add' })).ok);
  t.same(admitted, [true, true, false, false], 'maxEpisodesPerSession (2) still holds');
});

t.test('one-shot evaluations count as pending steps: past the limit they are busy', async (t) => {
  const { server, url } = await startServer({ maxPendingSteps: 1 });
  t.teardown(() => server.close());
  const base = url.replace('ws://', 'http://').replace('/v1/ws', '');
  const evaluate = (code: string) =>
    fetch(`${base}/v1/evaluate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ task: 'vector_add', reply: code }),
    });
  const slow = evaluate(LOOPING_VECTOR_ADD);
  await new Promise((r) => setTimeout(r, 300));
  const second = await evaluate(GOOD_VECTOR_ADD);
  t.equal(second.status, 503);
  t.equal((await second.json()).error.code, 'busy');
  const w = await session(url);
  t.teardown(() => w.close());
  const ep = (await w.call({ id: 1, op: 'reset', task: 'vector_add' })).episodes[0].episode;
  t.equal((await w.call({ id: 2, op: 'step', episode: ep, action: GOOD_VECTOR_ADD })).error?.code, 'busy');
  t.equal((await slow).status, 200, 'the one admitted is answered');
  t.equal((await w.call({ id: 3, op: 'step', episode: ep, action: GOOD_VECTOR_ADD })).ok, true, 'then steps go');
});

t.test("one session's flood of answers evicts its own from the replay store, not another trainer's", async (t) => {
  const { server, url } = await startServer({ replayBytes: 40_000 });
  t.teardown(() => server.close());
  const victim = await session(url);
  t.teardown(() => victim.close());
  const vep = (await victim.call({ id: 1, op: 'reset', task: 'vector_add', seed: 1 })).episodes[0].episode;
  const answered = await victim.call({ id: 2, op: 'step', episode: vep, action: GOOD_VECTOR_ADD });
  t.equal(answered.ok, true);
  const flood = await session(url);
  t.teardown(() => flood.close());
  for (let g = 0; g < 4; g++) {
    const eps = (await flood.call({ id: `g${g}`, op: 'reset', task: 'vector_add', seed: 1, group: { size: 16 } }))
      .episodes;
    await Promise.all(
      eps.map((e: { episode: string }, i: number) =>
        flood.call({ id: `s${g}-${i}`, op: 'step', episode: e.episode, action: GOOD_VECTOR_ADD }),
      ),
    );
  }
  t.ok(server.gym.sessions.replay.evicted > 0, `${server.gym.sessions.replay.evicted} answers evicted`);
  t.ok(server.gym.sessions.replay.totalBytes <= 40_000, 'the bound holds');
  victim.received.length = 0;
  const again = await victim.call({ id: 2, op: 'step', episode: vep, action: GOOD_VECTOR_ADD });
  t.equal(again.ok, true, "the victim's retry is answered from the store, not replay_expired");
  t.equal(again.info?.turn, 0);
});

t.test('past keptActionChars over all episodes, a turn keeps only 512 characters of its action', async (t) => {
  const { server, url, logDir } = await startServer({ keptActionChars: 40_000 });
  t.teardown(() => server.close());
  const w = await session(url);
  t.teardown(() => w.close());
  const ep = (await w.call({ id: 1, op: 'reset', task: 'vector_add', options: { maxTurns: 4 } })).episodes[0].episode;
  for (let i = 0; i < 4; i++) {
    const reply = `${i} ${'words without any code. '.repeat(1000)}`;
    t.equal((await w.call({ id: `s${i}`, op: 'step', episode: ep, action: reply })).info.outcome, 'no_code');
  }
  const kept = (await w.call({ id: 'st', op: 'state', episode: ep })).turns.map(
    (x: { action: string }) => x.action.length,
  );
  t.ok(
    kept.slice(0, 3).every((n: number) => n > 16 * 1024),
    `16 KiB each while under the bound: ${kept.slice(0, 3)}`,
  );
  t.ok(kept[3] < 600, `512 characters past it: ${kept[3]}`);
  t.ok(
    records(logDir).every((r) => r.action.length > 24_000),
    'the log has every reply whole',
  );
});

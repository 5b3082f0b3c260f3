/** Protocol v1 conformance: every op and every error code, in both encodings,
 * against a real server with the real C backend. */
import t, { type Test } from 'tap';
import { GOOD_VECTOR_ADD, LOOPING_VECTOR_ADD, startServer, Wire, type Frame } from './wire.js';

const { server, url } = await startServer({
  maxEpisodes: 40,
  maxGroupSize: 8,
  eval: { callTimeoutMs: 60_000, timingBudgetMs: 250, minReps: 3, maxReps: 12 },
});
t.teardown(() => server.close());

for (const encoding of ['json', 'msgpack'] as const) {
  t.test(`every op answers in ${encoding}, in kind`, async (t) => {
    const w = await Wire.open(url, encoding);
    t.teardown(() => w.close());
    await helloAndQueries(t, w, encoding === 'msgpack');
    const [a, b, c] = await resetAndStep(t, w);
    await cancelWhileRunning(t, w, b);
    await refusals(t, w, a, c);
  });
}

type Episode = Frame;

/** Nothing before hello; then hello, ping and tasks, answered in the request's encoding. */
async function helloAndQueries(t: Test, w: Wire, binary: boolean): Promise<void> {
  const early = await w.call({ id: 'e1', op: 'ping' });
  t.same(early.error.code, 'unauthorized', 'nothing is served before hello');

  const hello = await w.call({ id: 1, op: 'hello', protocol: 1, client: 'test' });
  t.equal(hello.ok, true);
  t.equal(hello.__binary, binary, 'answered in the encoding of the request');
  t.type(hello.session, 'string');
  t.type(hello.resumeToken, 'string');
  t.same(hello.backends, ['c']);
  t.ok(hello.tasksets.includes('builtin-c'));
  t.type(hello.limits.maxFrameBytes, 'number');

  const pong = await w.call({ id: 2, op: 'ping' });
  t.equal(pong.pong, true);
  t.type(pong.time, 'number');

  const tasks = await w.call({ id: 3, op: 'tasks', split: 'eval' });
  t.ok(tasks.tasks.length > 0);
  t.ok(tasks.tasks.every((x: { split: string }) => x.split === 'eval'));
}

/** A group reset, a sampled reset, a step with its progress, and the episode's state. */
async function resetAndStep(t: Test, w: Wire): Promise<Episode[]> {
  const reset = await w.call({ id: 4, op: 'reset', task: 'vector_add', seed: 42, group: { size: 3 } });
  t.equal(reset.episodes.length, 3);
  const [a, b] = reset.episodes;
  t.equal(a.group, b.group);
  t.same(
    reset.episodes.map((e: { index: number }) => e.index),
    [0, 1, 2],
  );
  t.equal(a.info.seed, 42);
  t.same(
    a.observation.messages.map((m: { role: string }) => m.role),
    ['system', 'user'],
  );
  t.match(a.observation.messages[1].content, /void solve\(const float \*a/);

  const sampled = await w.call({ id: 5, op: 'reset', split: 'train', seed: 9 });
  t.equal(sampled.episodes[0].info.split, 'train', 'a task sampled from the split');

  w.send({ id: 6, op: 'step', episode: a.episode, action: GOOD_VECTOR_ADD, meta: { tokens: [1, 2, 3] } });
  const queued = await w.next((f) => f.id === 6 && f.event === 'progress');
  t.equal(queued.stage, 'queued');
  t.type(queued.queuePosition, 'number');
  const result = await w.next((f) => f.id === 6 && f.event === 'result');
  t.equal(result.ok, true);
  t.equal(result.info.outcome, 'ok');
  t.ok(result.reward > 0.5);
  t.equal(result.terminated, false);
  t.equal(result.truncated, false);
  t.equal(result.info.turn, 0);
  t.equal(result.info.mask, false);
  t.same(Object.keys(result.info.components).sort(), ['correct', 'profile', 'speed']);
  t.equal(result.observation.messages[0].role, 'user');
  t.match(result.observation.messages[0].content, /correct/);
  t.notMatch(result.observation.messages[0].content, /reward/i, 'feedback never shows the reward');

  const st = await w.call({ id: 8, op: 'state', episode: a.episode });
  t.equal(st.turns.length, 1);
  t.equal(st.state, 'ready');
  return reset.episodes;
}

/** cancel: a step that never returns, cancelled while it runs. */
async function cancelWhileRunning(t: Test, w: Wire, b: Episode): Promise<void> {
  w.send({ id: 9, op: 'step', episode: b.episode, action: LOOPING_VECTOR_ADD });
  await w.next((f) => f.id === 9 && f.event === 'progress' && f.stage === 'compile');
  const inflight = await w.call({ id: 'again', op: 'step', episode: b.episode, action: GOOD_VECTOR_ADD });
  t.equal(inflight.error.code, 'step_in_flight');
  const t0 = Date.now();
  const cancelAck = await w.call({ id: 10, op: 'cancel', target: 9 });
  t.equal(cancelAck.cancelled, 9);
  const cancelled = await w.next((f) => f.id === 9 && f.event === 'result', 30_000);
  t.equal(cancelled.reason, 'cancelled');
  t.equal(cancelled.info.mask, true);
  t.ok(Date.now() - t0 < 15_000, 'the cancel reached the running sandbox');
  t.equal(
    (await w.call({ id: 11, op: 'state', episode: b.episode })).turns.length,
    0,
    'a cancelled turn does not count',
  );
  t.equal((await w.call({ id: 12, op: 'cancel', target: 'nothing' })).error.code, 'unknown_step');
}

/** The turn limit ends an episode; every refusal has its code; the connection stays open through them all. */
async function refusals(t: Test, w: Wire, a: Episode, c: Episode): Promise<void> {
  // the turn limit ends an episode; further steps are refused.
  const one = await w.call({ id: 13, op: 'reset', task: 'vector_add', options: { maxTurns: 1 } });
  const ep = one.episodes[0].episode;
  const last = await w.call({ id: 14, op: 'step', episode: ep, action: 'no code here' });
  t.equal(last.info.outcome, 'no_code');
  t.equal(last.truncated, true);
  t.equal(last.reason, 'max_turns');
  t.equal((await w.call({ id: 15, op: 'step', episode: ep, action: GOOD_VECTOR_ADD })).error.code, 'episode_done');

  t.equal((await w.call({ id: 16, op: 'close', episode: c.episode })).closed, c.episode);
  t.equal(
    (await w.call({ id: 17, op: 'step', episode: c.episode, action: GOOD_VECTOR_ADD })).error.code,
    'unknown_episode',
  );
  t.equal((await w.call({ id: 18, op: 'reset', task: 'nope' })).error.code, 'unknown_task');
  t.equal((await w.call({ id: 19, op: 'reset', taskset: 'nope' })).error.code, 'unknown_taskset');
  t.equal((await w.call({ id: 20, op: 'frobnicate' })).error.code, 'unknown_op');
  t.equal((await w.call({ id: 21, op: 'reset', seed: 'x' })).error.code, 'invalid_message');
  t.equal((await w.call({ id: 22, op: 'reset', group: { size: 1000 } })).error.code, 'invalid_message');
  const opened: Array<{ episode: string }> = [];
  let full: { error: { code: string; retryAfterMs: number } } | undefined;
  for (let i = 0; i < 10 && !full; i++) {
    const r = await w.call({ id: `fill-${i}`, op: 'reset', task: 'vector_add', group: { size: 8 } });
    if (r.ok) opened.push(...r.episodes);
    else full = r as unknown as typeof full;
  }
  t.equal(full?.error.code, 'busy', 'the episode limit answers busy');
  t.type(full?.error.retryAfterMs, 'number');
  for (const e of opened) await w.call({ id: `close-${e.episode}`, op: 'close', episode: e.episode });
  w.send({ id: 25, op: 'step', episode: a.episode, action: 'x'.repeat(2 * 1024 * 1024) });
  const big = await w.next((f) => f.ok === false && f.error.code === 'too_large');
  t.equal(big.id, null, 'a frame too large to read has no id');
  t.equal(w.closed, false, 'the connection stayed open through every error');
  t.ok(
    w.received
      .filter((f) => f.ok === false)
      .every((f) => typeof f.error.message === 'string' && typeof f.error.retryable === 'boolean'),
  );
}

t.test('busy when the pending-step limit is reached', async (t) => {
  const s = await startServer({ maxPendingSteps: 1, eval: { callTimeoutMs: 60_000 } });
  t.teardown(() => s.server.close());
  const w = await Wire.open(s.url);
  t.teardown(() => w.close());
  await w.call({ id: 1, op: 'hello', protocol: 1 });
  const r = await w.call({ id: 2, op: 'reset', task: 'vector_add', group: { size: 2 } });
  const [a, b] = r.episodes;
  w.send({ id: 3, op: 'step', episode: a.episode, action: LOOPING_VECTOR_ADD });
  await w.next((f) => f.id === 3 && f.event === 'progress');
  const busy = await w.call({ id: 4, op: 'step', episode: b.episode, action: GOOD_VECTOR_ADD });
  t.equal(busy.error.code, 'busy');
  t.ok(busy.error.retryAfterMs > 0);
  t.equal(busy.error.retryable, true);
  await w.call({ id: 5, op: 'cancel', target: 3 });
  await w.next((f) => f.id === 3 && f.event === 'result');
  const ok = await w.call({ id: 6, op: 'step', episode: b.episode, action: GOOD_VECTOR_ADD });
  t.equal(ok.info.outcome, 'ok', 'admitted again once the queue drained');
});

t.test('with a token, hello must carry it; HTTP too', async (t) => {
  const s = await startServer({ token: 's3cret' });
  t.teardown(() => s.server.close());
  const w = await Wire.open(s.url, 'msgpack');
  t.teardown(() => w.close());
  t.equal((await w.call({ id: 1, op: 'tasks' })).error.code, 'unauthorized');
  t.equal((await w.call({ id: 2, op: 'hello', protocol: 1 })).error.code, 'unauthorized');
  t.equal((await w.call({ id: 3, op: 'hello', protocol: 1, token: 'wrong' })).error.code, 'unauthorized');
  t.equal((await w.call({ id: 4, op: 'reset' })).error.code, 'unauthorized');
  t.equal((await w.call({ id: 5, op: 'hello', protocol: 1, token: 's3cret' })).ok, true);
  t.equal((await w.call({ id: 6, op: 'tasks' })).ok, true);
  const base = s.url.replace('ws://', 'http://').replace('/v1/ws', '');
  const body = JSON.stringify({ task: 'vector_add', reply: 'nothing' });
  const denied = await fetch(`${base}/v1/evaluate`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
  });
  t.equal(denied.status, 401);
  const allowed = await fetch(`${base}/v1/evaluate`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', authorization: 'Bearer s3cret' },
  });
  t.equal(allowed.status, 200);
  t.equal((await allowed.json()).outcome, 'no_code');
});

t.test('HTTP: health, metrics, tasks, one-shot evaluation', async (t) => {
  const base = url.replace('ws://', 'http://').replace('/v1/ws', '');
  const health = await (await fetch(`${base}/healthz`)).json();
  t.equal(health.ok, true);
  t.equal(health.sandbox, 'bwrap');
  const metrics = await (await fetch(`${base}/metrics`)).text();
  for (const name of [
    'anvil_connections',
    'anvil_episodes_open',
    'anvil_steps_total',
    'anvil_queue_depth',
    'anvil_stage_seconds_bucket',
  ])
    t.match(metrics, name);
  t.match(metrics, /anvil_steps_total\{outcome="ok"\} [1-9]/);
  const tasks = await (await fetch(`${base}/v1/tasks?split=train`)).json();
  t.ok(tasks.tasks.length > 0);
  t.equal((await fetch(`${base}/v1/tasks?taskset=nope`)).status, 404);
  const r = await fetch(`${base}/v1/evaluate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ task: 'vector_add', reply: GOOD_VECTOR_ADD }),
  });
  const result = await r.json();
  t.equal(result.outcome, 'ok');
  t.equal(
    (
      await fetch(`${base}/v1/evaluate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"task": 3}',
      })
    ).status,
    400,
  );
  t.equal((await fetch(`${base}/v1/ws`)).status, 404, 'plain HTTP to the socket path is not served');
});

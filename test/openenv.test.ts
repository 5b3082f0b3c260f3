/** The OpenEnv front door, from a plain WebSocket and fetch (not Anvil's clients),
 * checked against the shapes of OpenEnv's server: {type, data} messages over /ws,
 * ResetResponse/StepResponse over HTTP, and the same log records as protocol v1. */
import t, { type Test } from 'tap';
import { cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { builtin } from './helpers.js';
import { GOOD_VECTOR_ADD, startServer } from './wire.js';

type Msg = { type: string; data: Record<string, any> };

/** A connection that answers one message per send, as OpenEnv's client uses it. */
async function openenv(url: string, headers: Record<string, string> = {}) {
  const ws = new WebSocket(url, { headers });
  const inbox: Msg[] = [];
  const waiting: Array<(m: Msg) => void> = [];
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString()) as Msg;
    const w = waiting.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const next = () => (inbox.length ? Promise.resolve(inbox.shift()!) : new Promise<Msg>((r) => waiting.push(r)));
  return {
    ws,
    async send(m: unknown): Promise<Msg> {
      ws.send(typeof m === 'string' ? m : JSON.stringify(m));
      return next();
    },
    close: () => ws.close(),
  };
}

function records(logDir: string) {
  return readdirSync(logDir)
    .filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) => readFileSync(path.join(logDir, f), 'utf8').trim().split('\n').filter(Boolean))
    .map((l) => JSON.parse(l));
}

type OpenEnvSocket = Awaited<ReturnType<typeof openenv>>;
type Server = Awaited<ReturnType<typeof startServer>>['server'];

t.test(
  'WebSocket /ws: reset, step, state and close in OpenEnv shapes, with protocol v1 episodes and log records',
  async (t) => {
    const { server, logDir } = await startServer();
    t.teardown(() => server.close());
    const c = await openenv(`ws://127.0.0.1:${server.port}/ws`);
    t.teardown(() => c.close());

    const none = await c.send({ type: 'state' });
    t.same(Object.keys(none).sort(), ['data', 'type']);
    t.equal(none.type, 'state');
    t.equal(none.data.episode_id, null);
    t.equal(none.data.step_count, 0);

    const o = await resetInOpenEnvShape(t, c, server);
    const reward = await twoSteps(t, c, o.episode_id);
    const rec = records(logDir).filter((x) => x.episode === o.episode_id);
    t.equal(rec.length, 2, 'one log record per turn');
    t.equal(rec[0].group, 'g-1');
    t.same(rec[0].meta, { sample: 3 }, 'the action metadata is the step meta');
    t.same(rec[1].completionIds, [5, 9, 2], 'token ids are logged');
    t.same(rec[1].logprobs, [-0.5, -1.25, -0.125], 'log-probs are logged');
    t.equal(rec[1].reward, reward, 'the reward is the logged reward');

    await secondResetAndClose(t, c, server, o.episode_id);
  },
);

/** serialize_observation's shape: only type and data; observation, reward, done. */
async function resetInOpenEnvShape(t: Test, c: OpenEnvSocket, server: Server): Promise<Record<string, any>> {
  const r = await c.send({ type: 'reset', data: { task: 'vector_add', seed: 7, group_id: 'g-1' } });
  t.equal(r.type, 'observation');
  t.same(Object.keys(r).sort(), ['data', 'type'], 'only type and data, as WSObservationResponse');
  t.same(
    Object.keys(r.data).sort(),
    ['done', 'observation', 'reward'],
    'serialize_observation: observation, reward, done',
  );
  t.equal(r.data.reward, null);
  t.equal(r.data.done, false);
  const o = r.data.observation;
  t.equal(o.task, 'vector_add');
  t.equal(o.group_id, 'g-1', 'the group id given at reset');
  t.equal(o.turn, 0);
  t.equal(o.info.seed, 7);
  t.same(
    o.messages.map((m: { role: string }) => m.role),
    ['system', 'user'],
  );
  t.ok(server.gym.episodes.has(o.episode_id), 'a Gym episode, as protocol v1 makes');
  return o;
}

/** A step with no code, then a correct one; the state counts both. Returns the second's reward. */
async function twoSteps(t: Test, c: OpenEnvSocket, episodeId: string): Promise<number> {
  const bad = await c.send({ type: 'step', data: { message: 'no code at all', metadata: { sample: 3 } } });
  t.equal(bad.type, 'observation');
  t.equal(bad.data.done, false);
  t.equal(bad.data.observation.info.outcome, 'no_code');
  t.equal(bad.data.observation.info.mask, false);
  t.equal(typeof bad.data.reward, 'number');

  const good = await c.send({
    type: 'step',
    data: { message: GOOD_VECTOR_ADD, completion_ids: [5, 9, 2], logprobs: [-0.5, -1.25, -0.125] },
  });
  t.equal(good.type, 'observation');
  t.equal(good.data.observation.info.outcome, 'ok');
  t.equal(good.data.observation.turn, 2);
  t.ok(
    good.data.reward > bad.data.reward,
    `a correct kernel (${good.data.reward}) earns more than no code (${bad.data.reward})`,
  );

  const st = await c.send({ type: 'state' });
  t.equal(st.data.episode_id, episodeId);
  t.equal(st.data.step_count, 2);
  t.equal(st.data.group_id, 'g-1');
  return good.data.reward;
}

/** A second reset drops the current episode: one episode per instance, as an OpenEnv environment. */
async function secondResetAndClose(t: Test, c: OpenEnvSocket, server: Server, episodeId: string): Promise<void> {
  const r2 = await c.send({ type: 'reset', data: { task: 'saxpy' } });
  t.not(r2.data.observation.episode_id, episodeId);
  t.notOk(server.gym.episodes.has(episodeId));

  const sessions = server.gym.sessions.size;
  c.ws.send(JSON.stringify({ type: 'close' }));
  await new Promise((r) => c.ws.once('close', r));
  await t.resolves(async () => {
    for (let i = 0; i < 50 && server.gym.sessions.size >= sessions; i++) await new Promise((r) => setTimeout(r, 20));
  });
  t.equal(server.gym.sessions.size, sessions - 1, 'close ends the instance and its session');
}

t.test('bad messages get typed errors and the connection stays open', async (t) => {
  const { server } = await startServer();
  t.teardown(() => server.close());
  const c = await openenv(`ws://127.0.0.1:${server.port}/ws`);
  t.teardown(() => c.close());
  const cases: Array<[unknown, string]> = [
    ['{not json', 'INVALID_JSON'],
    [{ type: 'dance' }, 'UNKNOWN_TYPE'],
    [{ type: 'step', data: { message: 'x' } }, 'SESSION_ERROR'],
    [{ type: 'reset', data: { task: 'vector_add', colour: 'red' } }, 'VALIDATION_ERROR'],
    [{ type: 'reset', data: { task: 'no_such_task' } }, 'UNKNOWN_TASK'],
    [{ type: 'reset', data: { task: 'vector_add', options: { maxTurns: 999 } } }, 'INVALID_MESSAGE'],
  ];
  for (const [m, code] of cases) {
    const e = await c.send(m);
    t.equal(e.type, 'error', JSON.stringify(m));
    t.equal(e.data.code, code, e.data.message);
    t.type(e.data.message, 'string');
  }
  await c.send({ type: 'reset', data: { task: 'vector_add' } });
  const e = await c.send({ type: 'step', data: { message: 'x', logprobs: [-1] } });
  t.equal(e.data.code, 'VALIDATION_ERROR', 'log-probs without token ids');
  const ok = await c.send({ type: 'step', data: { message: 'still here' } });
  t.equal(ok.type, 'observation', 'the connection still works');
});

t.test('an infrastructure failure is an ENV_ERROR error, never a reward; the episode may step again', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-broken-openenv-'));
  cpSync(builtin().tasks.get('vector_add')!.dir, path.join(dir, 'vector_add'), { recursive: true });
  writeFileSync(
    path.join(dir, 'vector_add', 'reference.c'),
    'void solve(const float *a, const float *b, float *out, int n) { *(volatile int *)0 = n; }\n',
  );
  writeFileSync(
    path.join(dir, 'manifest.json'),
    JSON.stringify({ id: 'broken', backend: 'c', splits: { train: ['vector_add'], eval: [] }, maxTurns: 2 }),
  );
  const { server, logDir } = await startServer({ taskset: dir });
  t.teardown(() => server.close());
  const c = await openenv(`ws://127.0.0.1:${server.port}/ws`);
  t.teardown(() => c.close());
  await c.send({ type: 'reset', data: { task: 'vector_add' } });
  const e = await c.send({ type: 'step', data: { message: GOOD_VECTOR_ADD } });
  t.equal(e.type, 'error');
  t.equal(e.data.code, 'ENV_ERROR');
  t.equal(e.data.masked, true);
  t.equal(e.data.retryable, true);
  t.notOk('reward' in e.data);
  const st = await c.send({ type: 'state' });
  t.equal(st.data.step_count, 0, 'the turn is not counted');
  t.equal(st.data.state, 'ready');
  const rec = records(logDir);
  t.equal(rec.length, 1);
  t.equal(rec[0].mask, true, 'the log record is masked, as in protocol v1');
});

t.test('HTTP: /reset, /step, /state, /schema, /health, /metadata', async (t) => {
  const { server } = await startServer({ token: 'secret' });
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${server.port}`;
  const auth = { authorization: 'Bearer secret', 'content-type': 'application/json' };
  const post = (p: string, body: unknown, headers: Record<string, string> = auth) =>
    fetch(base + p, { method: 'POST', headers, body: JSON.stringify(body) });

  t.equal(
    (await post('/reset', { task: 'vector_add' }, { 'content-type': 'application/json' })).status,
    401,
    'the token guards /reset',
  );
  const reset = await post('/reset', { task: 'vector_add', seed: 1 });
  t.equal(reset.status, 200);
  const rr = await reset.json();
  t.same(Object.keys(rr).sort(), ['done', 'observation', 'reward']);
  const ep = rr.observation.episode_id;

  const step = await (
    await post('/step', { action: { message: GOOD_VECTOR_ADD }, episode_id: ep, request_id: 'r1' })
  ).json();
  t.same(Object.keys(step).sort(), ['done', 'observation', 'reward']);
  t.equal(step.observation.info.outcome, 'ok');
  const again = await (
    await post('/step', { action: { message: GOOD_VECTOR_ADD }, episode_id: ep, request_id: 'r1' })
  ).json();
  t.same(again, step, 'a retry with the same request_id is the same answer');
  const st = await (await fetch(`${base}/state?episode_id=${ep}`, { headers: auth })).json();
  t.equal(st.step_count, 1, 'evaluated and counted once');

  const unknown = await post('/step', { action: { message: 'x' }, episode_id: 'nope' });
  t.equal(unknown.status, 404);
  t.equal((await unknown.json()).detail.code, 'UNKNOWN_EPISODE');
  const invalid = await post('/step', { action: { text: 'x' }, episode_id: ep });
  t.equal(invalid.status, 422);

  const schema = await (await fetch(`${base}/schema`)).json();
  t.same(Object.keys(schema).sort(), ['action', 'observation', 'state']);
  t.same(schema.action.required, ['message']);
  t.ok(
    schema.observation.properties.messages &&
      schema.observation.properties.done &&
      schema.observation.properties.reward,
  );
  t.ok(schema.state.properties.episode_id && schema.state.properties.step_count);
  t.same(await (await fetch(`${base}/health`)).json(), { status: 'healthy' });
  const meta = await (await fetch(`${base}/metadata`)).json();
  t.equal(meta.name, 'anvil');
  t.type(meta.description, 'string');

  // The WebSocket takes the token as a bearer header or ?token=.
  await t.rejects(openenv(`ws://127.0.0.1:${server.port}/ws`), 'no token, no connection');
  const c = await openenv(`ws://127.0.0.1:${server.port}/ws?token=secret`);
  t.equal((await c.send({ type: 'state' })).type, 'state');
  c.close();
});

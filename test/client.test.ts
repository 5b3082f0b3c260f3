/** The TypeScript client parses every answer at the boundary: against a real server
 * each call returns the protocol's answer, typed; against a raw server that answers
 * wrongly, the call fails with MalformedAnswerError naming what is wrong, frames for no
 * pending request are ignored, and the client keeps working. */
import t from 'tap';
import { Packr } from 'msgpackr';
import { WebSocketServer, type WebSocket } from 'ws';
import { AnvilClient, AnvilProtocolError, MalformedAnswerError, type Encoding } from '../clients/ts/client.js';
import { GOOD_VECTOR_ADD, startServer } from './wire.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

for (const encoding of ['msgpack', 'json'] as Encoding[])
  t.test(`a real server (${encoding}): every call returns the protocol's answer`, async (t) => {
    const { server, url } = await startServer();
    t.teardown(() => server.close());
    const client = await AnvilClient.connect(url, { encoding });
    t.teardown(() => client.close());
    t.match(client.session, /^\S+$/);
    t.equal(client.serverInfo.protocol, 1);
    t.ok(Array.isArray(client.serverInfo.tasksets), 'hello keeps its fields (loose)');

    const listed = await client.tasks({ split: 'train' });
    const vectorAdd = listed.tasks.find((task) => task.id === 'vector_add');
    t.ok(vectorAdd, 'vector_add is listed');
    t.ok(vectorAdd!.shapes.length > 0, 'with its visible shapes');
    t.ok(
      listed.tasks.every((task) => task.split === 'train'),
      'only the split asked for',
    );

    const group = await client.reset({ task: 'vector_add', seed: 11, group: { size: 2 } });
    t.equal(group.length, 2);
    t.same(
      group.map((e) => [e.index, e.info.task, e.info.seed]),
      [
        [0, 'vector_add', 11],
        [1, 'vector_add', 11],
      ],
    );
    t.equal(group[0]!.observation.messages[0]!.role, 'system');

    const stages: string[] = [];
    const r = await client.step(group[0]!.episode, GOOD_VECTOR_ADD, { onProgress: (p) => stages.push(p.stage) });
    t.equal(r.episode, group[0]!.episode);
    t.equal(r.info.outcome, 'ok');
    t.equal(r.info.eval?.correct, true);
    t.equal(r.info.mask, false);
    t.equal(typeof r.reward, 'number');
    t.equal(r.info.taskVersion, 1, 'info keeps the fields the schema does not name (loose)');
    t.ok(stages.includes('queued'), 'progress reaches the callback');

    const state = await client.state(group[0]!.episode);
    t.equal(state.turns.length, 1);
    t.equal(state.turns[0]!.outcome, 'ok');
    t.equal(state.state, 'ready');

    const time = await client.ping();
    t.ok(Math.abs(time - Date.now()) < 60_000, 'ping answers the server time');
    await client.closeEpisode(group[1]!.episode);
    const closed = await client.state(group[1]!.episode).catch((e: unknown) => e);
    t.type(closed, AnvilProtocolError, 'an error answer is still the protocol error');
    t.equal((closed as AnvilProtocolError).code, 'unknown_episode');
  });

/** A raw protocol server: answers hello well unless told otherwise, and every other request with `answer`. */
async function rawServer(
  answer: (request: Record<string, unknown>, send: (frame: unknown) => void) => void,
  hello: (id: unknown) => unknown = (id) => ({
    id,
    ok: true,
    session: 's1',
    resumeToken: 'r1',
    resumed: false,
    version: 'raw',
    protocol: 1,
    backends: ['c'],
    tasksets: ['builtin-c'],
    limits: { maxFrameBytes: 1 << 20 },
  }),
): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((resolve) => wss.once('listening', resolve));
  wss.on('connection', (ws: WebSocket) =>
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const request = isBinary ? packr.unpack(data) : JSON.parse(data.toString('utf8'));
      const send = (frame: unknown) =>
        isBinary ? ws.send(packr.pack(frame), { binary: true }) : ws.send(JSON.stringify(frame));
      if (request.op === 'hello') send(hello(request.id));
      else answer(request, send);
    }),
  );
  const port = (wss.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${port}/v1/ws`,
    connections: () => wss.clients.size,
    close: () =>
      new Promise((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close(() => resolve());
      }),
  };
}

t.test('a malformed answer fails its call with MalformedAnswerError; the client carries on', async (t) => {
  let pings = 0;
  const raw = await rawServer((m, send) => {
    if (m.op === 'ping' && pings++ === 0) send({ id: m.id, ok: true, pong: true, time: 'soon' });
    else if (m.op === 'ping') {
      send({ id: 999_999, ok: 'perhaps' }); // answers no pending request: ignored
      send({ id: m.id, ok: true, pong: true, time: 1234 });
    } else if (m.op === 'reset') send({ id: m.id, ok: true, episodes: [{ episode: 'e1', group: 'g1', index: 0 }] });
    else if (m.op === 'state') send({ id: m.id, ok: false, error: { code: 'unknown_episode', message: 42 } });
    else if (m.op === 'step') send({ id: m.id, ok: true, event: 'progress', queuePosition: 0 });
    else if (m.op === 'tasks') send({ id: m.id, event: 'result' });
  });
  t.teardown(() => raw.close());
  const client = await AnvilClient.connect(raw.url, { reconnect: false });
  t.teardown(() => client.close());

  const bad = await client.ping().then(
    () => null,
    (e: unknown) => e,
  );
  t.type(bad, MalformedAnswerError);
  const e = bad as MalformedAnswerError;
  t.equal(e.op, 'ping');
  t.match(e.problems, [/^time: .*expected number/]);
  t.match(e.message, /the answer to "ping" \(request \d+\) is not one of protocol v1: time: /);

  t.equal(await client.ping(), 1234, 'the next call is answered: the client kept going');

  await t.rejects(client.reset({ task: 'x' }), {
    name: 'MalformedAnswerError',
    op: 'reset',
    message: /episodes\.0\.observation: .*episodes\.0\.info: /,
  });
  await t.rejects(client.state('e1'), { name: 'MalformedAnswerError', message: /error\.message: .*expected string/ });
  await t.rejects(client.step('e1', 'reply'), { name: 'MalformedAnswerError', op: 'step', message: /stage: / });
  await t.rejects(client.tasks(), { name: 'MalformedAnswerError', message: /ok: / });
});

t.test('a malformed hello fails connect with MalformedAnswerError, and the client does not linger', async (t) => {
  const raw = await rawServer(
    () => undefined,
    (id) => ({ id, ok: true, session: 7, protocol: 2 }),
  );
  t.teardown(() => raw.close());
  await t.rejects(AnvilClient.connect(raw.url), {
    name: 'MalformedAnswerError',
    op: 'hello',
    message: /session: .*expected string/,
  });
  const end = Date.now() + 5000;
  while (raw.connections() > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  t.equal(raw.connections(), 0, 'the failed client closed its connection');
});

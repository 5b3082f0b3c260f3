/** Attacks on every door of a running server, not only /v1/ws's hello: HTTP routes
 * guessing the token, idle keep-alive and slow-body HTTP sockets holding places, and
 * the routes that must not answer without the token. Loopback; 127.0.0.N are other
 * addresses. */
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import WebSocket from 'ws';
import { GOOD_VECTOR_ADD, startServer, Wire } from './wire.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const closed = (s: net.Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));

/** One HTTP request from a chosen source address: status and parsed body. */
function request(
  port: number,
  method: string,
  path: string,
  opts: { token?: string; body?: string; localAddress?: string } = {},
): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        localAddress: opts.localAddress ?? '127.0.0.1',
        agent: false,
        headers: {
          'content-type': 'application/json',
          ...(opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {}),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null }));
      },
    );
    req.on('error', reject);
    req.end(opts.body ?? (method === 'POST' ? '{}' : undefined));
  });
}

t.test('wrong tokens are throttled at every HTTP door, not only at hello', async (t) => {
  const { server, url } = await startServer({ token: 's3cret', authFailuresPerMinute: 4 });
  t.teardown(() => server.close());
  const port = server.port;
  const guesses: Array<[string, string, string?]> = [
    ['POST', '/reset'],
    ['POST', '/v1/evaluate', '{"task":"vector_add","code":"x"}'],
    ['GET', '/v1/dashboard/state'],
    ['GET', '/healthz'],
  ];
  const statuses = [];
  for (const [method, path, body] of guesses)
    statuses.push((await request(port, method, path, { token: 'guess', body })).status);
  t.same(statuses.slice(0, 3), [401, 401, 401], 'wrong tokens are refused');
  const after = await request(port, 'POST', '/step', {
    token: 'guess-5',
    body: '{"action":{"message":"x"},"episode_id":"e"}',
  });
  t.equal(after.status, 429, 'past the budget, HTTP answers 429');
  t.equal(after.body.detail.code, 'RATE_LIMITED', "in OpenEnv's shape on OpenEnv's routes");
  const right = await request(port, 'GET', '/v1/tasks', { token: 's3cret' });
  t.equal(right.status, 429, 'even the right token waits out the minute from that address');
  t.equal(right.body.error.code, 'rate_limited');
  t.ok(right.body.error.retryAfterMs > 50_000);
  const upgrade = await Wire.open(url).then(
    () => 'open',
    (e: Error) => e.message,
  );
  t.match(upgrade, /429/, 'and the WebSocket door is shut to it too');
  t.same((await request(port, 'GET', '/healthz')).body, { ok: true }, 'liveness without a token stays open');
  const other = await request(port, 'GET', '/v1/tasks', { token: 's3cret', localAddress: '127.0.0.7' });
  t.equal(other.status, 200, 'another address with the token is served');
});

t.test('the task list needs the token, as the tasks op does', async (t) => {
  const { server } = await startServer({ token: 's3cret' });
  t.teardown(() => server.close());
  const anon = await request(server.port, 'GET', '/v1/tasks');
  t.equal(anon.status, 401);
  t.equal(anon.body.error.code, 'unauthorized');
  t.notOk(JSON.stringify(anon.body).includes('vector_add'), 'nothing about the tasks');
  const ok = await request(server.port, 'GET', '/v1/tasks', { token: 's3cret' });
  t.ok(ok.body.tasks.some((x: { id: string }) => x.id === 'vector_add'));
});

/** An HTTP connection that asked one thing and stays open, idle, as keep-alive allows. */
async function keptAlive(port: number, localAddress: string): Promise<net.Socket> {
  const s = net.connect({ port, host: '127.0.0.1', localAddress });
  s.on('error', () => undefined);
  await new Promise((r) => s.once('connect', r));
  s.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  await new Promise((r) => (s.once('data', r), s.once('close', r)));
  return s;
}

t.test('an idle keep-alive HTTP connection and a slow body are pending: closed at the hello deadline', async (t) => {
  const { server } = await startServer({ helloTimeoutMs: 500 });
  t.teardown(() => server.close());
  const idle = await keptAlive(server.port, '127.0.0.1');
  const slow = net.connect({ port: server.port, host: '127.0.0.1' });
  slow.on('error', () => undefined);
  await new Promise((r) => slow.once('connect', r));
  slow.write('POST /reset HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{');
  const drip = setInterval(() => slow.write(' '), 100);
  t.teardown(() => clearInterval(drip));
  await Promise.race([Promise.all([closed(idle), closed(slow)]), sleep(2500)]);
  t.ok(idle.destroyed, "the idle one was closed within 2.5 s, not after keep-alive's 5 s");
  t.ok(slow.destroyed, 'the slow body was closed within 2.5 s, not after the 30 s request timeout');
});

t.test('keep-alive HTTP sockets from many addresses cannot fill the server and lock trainers out', async (t) => {
  // The server's socket bound is maxConnections + maxPendingConnections + 1024 = 1032 here.
  const { server, url } = await startServer({ maxConnections: 4, maxPendingConnections: 4 });
  t.teardown(() => server.close());
  const held: net.Socket[] = [];
  t.teardown(() => held.forEach((s) => s.destroy()));
  // Four at a time (the pending pool's size), each asks GET /health and then idles.
  for (let i = 0; i < 1100; i += 4)
    held.push(...(await Promise.all([0, 1, 2, 3].map((k) => keptAlive(server.port, `127.0.4.${((i + k) % 6) + 1}`)))));
  await sleep(100);
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  const hello = await w.call({ id: 1, op: 'hello', protocol: 1 }, 5000);
  t.equal(hello.ok, true, 'a trainer still connects and says hello');
  t.ok(held.filter((s) => !s.destroyed).length <= 4, 'the idle ones were evicted as pending');
});

t.test("what fastify refuses itself gets the registry's typed errors, in each door's shape", async (t) => {
  const { server } = await startServer({ maxActionChars: 1000 });
  t.teardown(() => server.close());
  const port = server.port;
  const bad = await request(port, 'POST', '/v1/evaluate', { body: '{not json' });
  t.equal(bad.status, 400);
  t.equal(bad.body.error.code, 'invalid_message');
  const badReset = await request(port, 'POST', '/reset', { body: '{not json' });
  t.equal(badReset.status, 400);
  t.equal(badReset.body.detail.code, 'INVALID_MESSAGE');
  const huge = await request(port, 'POST', '/v1/evaluate', {
    body: JSON.stringify({ pad: 'x'.repeat(2 * 1024 ** 2) }),
  });
  t.equal(huge.status, 413);
  t.equal(huge.body.error.code, 'too_large');
  const long = await request(port, 'POST', '/v1/evaluate', {
    body: JSON.stringify({ task: 'vector_add', reply: 'x'.repeat(1001) }),
  });
  t.equal(long.status, 413, 'a reply over maxActionChars, as a step would not evaluate it');
  t.match(long.body.error.message, /the limit is 1000/);
});

t.test("OpenEnv's /ws keeps at most 1 MiB of messages waiting behind the one in progress", async (t) => {
  const { server, url } = await startServer();
  t.teardown(() => server.close());
  const ws = new WebSocket(url.replace('/v1/ws', '/ws'));
  t.teardown(() => ws.close());
  const got: any[] = [];
  ws.on('message', (d) => got.push(JSON.parse(d.toString())));
  await new Promise((r) => ws.once('open', r));
  ws.send(JSON.stringify({ type: 'reset', data: { task: 'vector_add', seed: 1 } }));
  // A fresh kernel (compiled, checked, timed) holds the connection's queue while it runs.
  const fresh = GOOD_VECTOR_ADD.replace('out[i] = a[i] + b[i];', `out[i] = b[i] + a[i]; /* ${Date.now()} */`);
  ws.send(JSON.stringify({ type: 'step', data: { message: fresh } }));
  const big = JSON.stringify({ type: 'state', pad: 'x'.repeat(600 * 1024) });
  for (let i = 0; i < 4; i++) ws.send(big);
  while (got.length < 6) await sleep(50);
  const codes = got.map((m) => (m.type === 'error' ? m.data.code : m.type));
  t.equal(codes[0], 'observation', 'the reset');
  t.same(
    codes.slice(1, 4),
    ['CAPACITY_REACHED', 'CAPACITY_REACHED', 'CAPACITY_REACHED'],
    'past 1 MiB waiting, refused at once',
  );
  t.equal(codes[4], 'observation', "the step's answer");
  t.equal(codes[5], 'VALIDATION_ERROR', 'the one message kept waiting is answered in its turn');
});

t.test('over HTTP, finished episodes give their sessions back to the address at its quota', async (t) => {
  const { server } = await startServer({ maxSessionsPerAddress: 3 });
  t.teardown(() => server.close());
  const port = server.port;
  const reset = () => request(port, 'POST', '/reset', { body: JSON.stringify({ options: { maxTurns: 1 } }) });
  for (let i = 0; i < 6; i++) {
    const r = await reset();
    t.equal(r.status, 200, `episode ${i} opens`);
    const id = r.body.observation.episode_id;
    const s = await request(port, 'POST', '/step', {
      body: JSON.stringify({ episode_id: id, action: { message: 'no code' }, request_id: 'a' }),
    });
    t.equal(s.body.done, true, 'and ends at its one turn');
  }
  const w = await Wire.open(`ws://127.0.0.1:${port}/v1/ws`);
  t.teardown(() => w.close());
  t.equal((await w.call({ id: 1, op: 'hello', protocol: 1 })).ok, true, 'a protocol v1 hello takes a place too');
  w.close();
  const open = [await reset(), await reset()];
  t.ok(
    open.every((r) => r.status === 200),
    'unfinished episodes take the other places',
  );
  const refused = await reset();
  t.equal(refused.status, 503, 'unfinished ones are not freed');
  t.equal(refused.body.detail.code, 'CAPACITY_REACHED');
});

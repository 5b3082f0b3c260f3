/** Each admission limit and quota, hit on purpose from loopback: what the
 * offender gets, and that a trainer from another address still gets in.
 * 127.0.0.0/8 is all loopback on Linux, so other "addresses" are 127.0.0.N. */
import t from 'tap';
import net from 'node:net';
import WebSocket from 'ws';
import { startServer, Wire } from './wire.js';

const closed = (s: net.Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));

function tcp(port: number, localAddress = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress }, () => resolve(s));
    s.on('error', () => undefined);
    s.once('error', reject);
  });
}

function ws(url: string, localAddress = '127.0.0.1'): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const w = new WebSocket(url, { localAddress });
    w.once('open', () => resolve(w));
    w.once('error', reject);
    w.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

const wsClosed = (w: WebSocket) =>
  new Promise<number>((r) => (w.readyState === w.CLOSED ? r(1006) : w.once('close', (code) => r(code))));

t.test('a connection that never says hello is closed at the deadline: raw TCP and WebSocket', async (t) => {
  const { server, url } = await startServer({ helloTimeoutMs: 400 });
  t.teardown(() => server.close());
  const raw = await tcp(server.port);
  const sock = await ws(url);
  const frames: any[] = [];
  sock.on('message', (d) => frames.push(JSON.parse(d.toString())));
  const t0 = Date.now();
  await closed(raw);
  t.equal(await wsClosed(sock), 4008, 'the WebSocket is told why');
  t.ok(Date.now() - t0 < 3000, 'both went at the deadline');
  t.equal(frames[0]?.error?.code, 'timeout');
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  t.equal((await w.call({ id: 1, op: 'hello', protocol: 1 })).ok, true);
  await new Promise((r) => setTimeout(r, 700));
  t.equal(w.closed, false, 'a connection that said hello stays');
});

t.test('a keep-alive HTTP connection that upgrades is held to the hello deadline again', async (t) => {
  const { server } = await startServer({ helloTimeoutMs: 600 });
  t.teardown(() => server.close());
  const raw = await tcp(server.port);
  let got = '';
  raw.on('data', (d) => (got += d));
  raw.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
  while (!got.includes('"ok":true')) await new Promise((r) => setTimeout(r, 20));
  raw.write(
    `GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${Buffer.alloc(16, 2).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  while (!got.includes('101 Switching Protocols')) await new Promise((r) => setTimeout(r, 20));
  const t0 = Date.now();
  await closed(raw);
  t.ok(Date.now() - t0 < 3000, `closed ${Date.now() - t0} ms after its upgrade, without a hello`);
});

t.test(
  'before hello frames are limited to a few KiB, a 15 MiB partial frame included; after hello the full limit applies',
  async (t) => {
    const { server, url } = await startServer();
    t.teardown(() => server.close());
    const big = await Wire.open(url);
    big.sendRaw('x'.repeat(16 * 1024), false);
    t.equal(await wsClosed(big.ws), 1009, 'a 16 KiB frame before hello closes the connection (1009, too big)');
    // A frame header announcing 15 MiB, then a little of its payload: refused at the header.
    const raw = await tcp(server.port);
    raw.write(
      `GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${Buffer.alloc(16, 1).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await new Promise((r) => raw.once('data', r));
    const header = Buffer.alloc(14);
    header[0] = 0x82; // FIN, binary
    header[1] = 0x80 | 127; // masked, 64-bit length
    header.writeBigUInt64BE(15n * 1024n * 1024n, 2);
    raw.write(Buffer.concat([header, Buffer.alloc(64 * 1024)]));
    await closed(raw);
    t.pass('the partial frame closed its connection');
    const w = await Wire.open(url);
    t.teardown(() => w.close());
    await w.call({ id: 1, op: 'hello', protocol: 1 });
    const answer = await w.call({ id: 2, op: 'ping', pad: 'x'.repeat(100 * 1024) } as never);
    t.equal(answer.error?.code, 'invalid_message', 'a 100 KiB frame after hello is read (and judged on its content)');
    t.equal(w.closed, false);
  },
);

t.test('connections per address are limited; other addresses still get in', async (t) => {
  const { server, url } = await startServer({ maxConnectionsPerAddress: 5 });
  t.teardown(() => server.close());
  const held = await Promise.all(Array.from({ length: 5 }, () => tcp(server.port, '127.0.0.2')));
  t.teardown(() => held.forEach((s) => s.destroy()));
  const sixth = await tcp(server.port, '127.0.0.2');
  await closed(sixth);
  t.pass('the sixth connection from 127.0.0.2 is closed at once');
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  t.equal((await w.call({ id: 1, op: 'hello', protocol: 1 })).ok, true, 'a trainer from 127.0.0.1 is served');
  t.equal(held.filter((s) => !s.destroyed).length, 5);
});

t.test(
  'when the pending pool is full the oldest pending connection makes room; a trainer always gets in',
  async (t) => {
    const { server, url } = await startServer({ maxPendingConnections: 20 });
    t.teardown(() => server.close());
    const attackers: net.Socket[] = [];
    for (let i = 0; i < 40; i++) attackers.push(await tcp(server.port, `127.0.1.${1 + (i % 10)}`));
    t.teardown(() => attackers.forEach((s) => s.destroy()));
    await new Promise((r) => setTimeout(r, 100));
    t.ok(server.admission.pendingCount <= 20, `${server.admission.pendingCount} pending`);
    t.equal(attackers.filter((s) => s.destroyed).length, 20, 'the oldest 20 were closed');
    t.ok(
      attackers.slice(0, 20).every((s) => s.destroyed),
      'oldest first',
    );
    const w = await Wire.open(url);
    t.teardown(() => w.close());
    t.equal((await w.call({ id: 1, op: 'hello', protocol: 1 })).ok, true);
    t.equal(server.admission.closed.evicted >= 21, true, "the trainer took an attacker's place");
  },
);

t.test('failed hellos are throttled per address, and the door is shut to it for the rest of the minute', async (t) => {
  const { server, url } = await startServer({ token: 's3cret', authFailuresPerMinute: 3 });
  t.teardown(() => server.close());
  const base = url.replace('ws://', 'http://').replace('/v1/ws', '');
  const bad = await Wire.open(url.replace('127.0.0.1', '127.0.0.1'));
  t.equal((await bad.call({ id: 1, op: 'hello', protocol: 1, token: 'a' })).error.code, 'unauthorized');
  t.equal((await bad.call({ id: 2, op: 'hello', protocol: 1, token: 'b' })).error.code, 'unauthorized');
  const third = await bad.call({ id: 3, op: 'hello', protocol: 1, token: 'c' });
  t.equal(third.error.code, 'rate_limited');
  t.equal(third.error.retryable, true);
  t.ok(third.error.retryAfterMs > 50_000, 'wait for the rest of the minute');
  t.equal(await wsClosed(bad.ws), 4029, 'and the connection is closed');
  await t.rejects(ws(url), /HTTP 429/, 'a new upgrade from that address is refused');
  const other = await ws(url, '127.0.0.9');
  t.teardown(() => other.close());
  const reply = new Promise<any>((r) => other.once('message', (d) => r(JSON.parse(d.toString()))));
  other.send(JSON.stringify({ id: 1, op: 'hello', protocol: 1, token: 's3cret' }));
  t.equal((await reply).ok, true, 'another address with the token is served');
  t.same(await (await fetch(`${base}/healthz`)).json(), { ok: true }, '/healthz without the token: liveness only');
  const full = await fetch(`${base}/healthz`, { headers: { authorization: 'Bearer s3cret' } });
  t.equal(full.status, 429, 'with a token, from that address: refused for the rest of the minute, as every door');
});

t.test('sessions are limited per address and overall', async (t) => {
  const { server, url } = await startServer({ maxSessionsPerAddress: 2, maxSessions: 3 });
  t.teardown(() => server.close());
  const open = async (addr: string) => {
    const w = await ws(url, addr);
    t.teardown(() => w.terminate());
    const reply = new Promise<any>((r) => w.once('message', (d) => r(JSON.parse(d.toString()))));
    w.send(JSON.stringify({ id: 1, op: 'hello', protocol: 1 }));
    return reply;
  };
  t.equal((await open('127.0.0.1')).ok, true);
  const second = await open('127.0.0.1');
  t.equal(second.ok, true);
  const third = await open('127.0.0.1');
  t.equal(third.error.code, 'busy', 'the third session from one address');
  t.match(third.error.message, /resume one instead/);
  t.equal((await open('127.0.0.3')).ok, true, 'another address');
  t.equal((await open('127.0.0.4')).error.code, 'busy', 'past the overall limit');
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  const resumed = await w.call({ id: 1, op: 'hello', protocol: 1, resume: second.resumeToken });
  t.equal(resumed.resumed, true, 'resuming is always possible');
});

t.test(
  'open episodes per session are limited; finished ones no longer count, and are freed past their bound',
  async (t) => {
    const { server, url } = await startServer({ maxEpisodesPerSession: 3, finishedEpisodesKept: 2 });
    t.teardown(() => server.close());
    const w = await Wire.open(url);
    t.teardown(() => w.close());
    await w.call({ id: 'h', op: 'hello', protocol: 1 });
    const eps = (
      await w.call({ id: 1, op: 'reset', task: 'vector_add', group: { size: 3 }, options: { maxTurns: 1 } })
    ).episodes.map((e: any) => e.episode);
    const over = await w.call({ id: 2, op: 'reset', task: 'vector_add' });
    t.equal(over.error.code, 'busy');
    t.match(over.error.message, /this session holds its limit of 3/);
    const other = await Wire.open(url);
    t.teardown(() => other.close());
    await other.call({ id: 'h', op: 'hello', protocol: 1 });
    t.equal((await other.call({ id: 1, op: 'reset', task: 'vector_add' })).ok, true, 'another session is not affected');
    for (const [i, ep] of eps.entries()) {
      const r = await w.call({ id: `s${i}`, op: 'step', episode: ep, action: 'no code here' });
      t.equal(r.truncated, true, 'one turn: the episode ends');
    }
    t.equal(
      (await w.call({ id: 3, op: 'reset', task: 'vector_add', group: { size: 3 } })).ok,
      true,
      'finished episodes free the quota',
    );
    t.equal(
      (await w.call({ id: 4, op: 'state', episode: eps[0] })).error.code,
      'unknown_episode',
      'the oldest finished episode was freed',
    );
    t.equal(
      (await w.call({ id: 5, op: 'state', episode: eps[2] })).state,
      'done',
      'recent finished ones are kept for state',
    );
    t.equal(server.gym.episodes.size, 3 + 1 + 2, 'open episodes plus two finished ones');
  },
);

t.test("a hello that resumes its own connection's session answers normally and keeps the connection", async (t) => {
  const { server, url } = await startServer();
  t.teardown(() => server.close());
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  const hello = await w.call({ id: 1, op: 'hello', protocol: 1 });
  const again = await w.call({ id: 2, op: 'hello', protocol: 1, resume: hello.resumeToken });
  t.equal(again.ok, true);
  t.equal(again.resumed, true);
  t.equal(again.session, hello.session);
  t.equal((await w.call({ id: 3, op: 'ping' })).pong, true);
  t.equal(w.closed, false);
  t.equal(server.gym.sessions.size, 1);
});

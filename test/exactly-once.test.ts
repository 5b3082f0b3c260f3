/** Exactly once, by request id, across lost answers: 3,000 answers written into
 * a connection the client never read, then a resume that sends every step
 * again. Each is answered once, none is missing, none is evaluated twice. */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { AnvilClient } from '../clients/ts/client.js';
import type { AnvilServer } from '../env/server.js';
import { startServer, Wire } from './wire.js';

const N = 3000;

function logRecords(dir: string): Array<Record<string, any>> {
  const out = [];
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.jsonl')))
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) if (line) out.push(JSON.parse(line));
  return out;
}

async function until(cond: () => boolean, what: string, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function openEpisodes(w: Wire, n: number): Promise<string[]> {
  const eps: string[] = [];
  for (let i = 0; eps.length < n; i++) {
    const size = Math.min(64, n - eps.length);
    const r = await w.call({ id: `r${i}`, op: 'reset', task: 'vector_add', group: { size } });
    eps.push(...r.episodes.map((e: any) => e.episode));
  }
  return eps;
}

const answered = (s: AnvilServer) => s.gym.pendingSteps === 0;

t.test(`${N} lost answers, then a resume that sends every step again: 0 duplicates, 0 missing`, async (t) => {
  const { server, url, logDir } = await startServer({ maxEpisodesPerSession: N, maxPendingSteps: N + 10 });
  t.teardown(() => server.close());
  const a = await Wire.open(url, 'msgpack');
  const hello = await a.call({ id: 'h', op: 'hello', protocol: 1 });
  const eps = await openEpisodes(a, N);
  // The client stops reading: every answer from here on goes into a connection that is never read.
  (a.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  eps.forEach((ep, i) => a.send({ id: i, op: 'step', episode: ep, action: `no code in reply ${i}` }));
  await until(() => logRecords(logDir).length === N && answered(server), 'every step answered on the server');
  a.ws.terminate();
  const b = await Wire.open(url, 'msgpack');
  t.teardown(() => b.close());
  const again = await b.call({ id: 'h2', op: 'hello', protocol: 1, resume: hello.resumeToken });
  t.equal(again.resumed, true);
  eps.forEach((ep, i) => b.send({ id: i, op: 'step', episode: ep, action: `no code in reply ${i}` }));
  await until(() => b.received.filter((f) => f.event === 'result').length >= N, 'every answer again', 60_000);
  await new Promise((r) => setTimeout(r, 300));
  const results = b.received.filter((f) => f.event === 'result');
  const ids = new Set(results.map((f) => f.id));
  t.equal(results.length, N, 'one answer per request id: 0 duplicates');
  t.equal(ids.size, N, '0 missing');
  t.ok(
    results.every((f) => f.episode === eps[f.id]),
    'each answer is for its own request',
  );
  const records = logRecords(logDir);
  t.equal(records.length, N, 'each step logged once: none evaluated again');
  t.equal(new Set(records.map((r) => r.episode)).size, N);
  t.equal(server.gym.sessions.replay.evicted, 0);
});

t.test(
  `the TypeScript client: ${N} steps whose answers are lost, reconnect, every promise resolves once`,
  async (t) => {
    const { server, url, logDir } = await startServer({ maxEpisodesPerSession: N, maxPendingSteps: N + 10 });
    t.teardown(() => server.close());
    const client = await AnvilClient.connect(url);
    t.teardown(() => client.close());
    const eps: string[] = [];
    while (eps.length < N)
      eps.push(
        ...(await client.reset({ task: 'vector_add', group: { size: Math.min(64, N - eps.length) } })).map(
          (e) => e.episode,
        ),
      );
    const socket = () => (client as unknown as { ws: { _socket: { pause(): void } } }).ws._socket;
    socket().pause();
    let settled = 0;
    const steps = eps.map((ep, i) =>
      client.step(ep, `no code ${i}`).then((r) => {
        settled++;
        return r;
      }),
    );
    await until(() => logRecords(logDir).length === N && answered(server), 'every step answered on the server');
    t.equal(settled, 0, 'no answer reached the client');
    client.dropConnection();
    const results = await Promise.all(steps);
    t.equal(results.length, N);
    t.ok(
      results.every((r, i) => r.episode === eps[i]),
      'every step got its own answer',
    );
    t.equal(logRecords(logDir).length, N, 'none evaluated twice');
  },
);

t.test('past the replay bound a retried step gets replay_expired and is not evaluated again', async (t) => {
  const { server, url, logDir } = await startServer({ replayBytes: 20_000 });
  t.teardown(() => server.close());
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  await w.call({ id: 'h', op: 'hello', protocol: 1 });
  const eps = await openEpisodes(w, 40);
  for (const [i, ep] of eps.entries()) await w.call({ id: i, op: 'step', episode: ep, action: 'no code' });
  t.ok(server.gym.sessions.replay.totalBytes <= 20_000, 'the store holds its byte bound');
  t.ok(server.gym.sessions.replay.evicted > 0);
  w.received.length = 0;
  const old = await w.call({ id: 0, op: 'step', episode: eps[0], action: 'no code' });
  t.equal(old.error.code, 'replay_expired');
  t.equal(old.error.retryable, false);
  const recent = await w.call({ id: 39, op: 'step', episode: eps[39], action: 'no code' });
  t.equal(recent.event, 'result', 'a recent answer is replayed');
  t.equal(logRecords(logDir).length, 40, 'nothing evaluated twice');
});

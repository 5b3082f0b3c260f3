/** Benchmark of the server's own cost (not a test). A live `anvil serve` in a
 * child process; several connections from this process; every step sends the
 * same code on the same task and seed, so after the first evaluation every
 * verdict comes from the cache and what is measured is the server: decoding,
 * validation, episodes, the reward, the log write, the answer.
 *
 *   node dist/bench/server-load.js [--episodes 1000,10000] [--rate 2000] [--seconds 10] [--out FILE]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { PACKAGE_ROOT } from '../tasks/paths.js';

const { values } = parseArgs({
  options: {
    episodes: { type: 'string', default: '1000,10000' },
    rate: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '8' },
    out: { type: 'string', default: 'docs/benchmarks/server-load.md' },
  },
});
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
const CODE =
  '```c\nvoid solve(const float *a, const float *b, float *out, int n) {\n  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];\n}\n```';
const log = (s: string) => process.stderr.write(`${s}\n`);
const lines: string[] = [];
const say = (s = '') => {
  lines.push(s);
  console.log(s);
};

class Conn {
  private nextId = 1;
  private readonly waiting = new Map<number, (f: any) => void>();
  constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      const f = packr.unpack(d);
      if (f.event === 'progress') return;
      const w = this.waiting.get(f.id);
      if (w) {
        this.waiting.delete(f.id);
        w(f);
      }
    });
  }
  static async open(url: string): Promise<Conn> {
    const ws = new WebSocket(url);
    await new Promise((r, j) => {
      ws.once('open', r);
      ws.once('error', j);
    });
    const c = new Conn(ws);
    await c.call({ op: 'hello', protocol: 1 });
    return c;
  }
  call(body: Record<string, unknown>): Promise<any> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.ws.send(packr.pack({ id, ...body }), { binary: true });
    });
  }
}

async function boot(logDir: string): Promise<{ child: ChildProcess; url: string; http: string }> {
  const cfg = path.join(logDir, 'config.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      maxEpisodes: 50_000,
      maxEpisodesPerSession: 50_000,
      maxPendingSteps: 50_000,
      maxTurnsLimit: 64,
      maxGroupSize: 64,
    }),
  );
  const child = spawn(
    process.execPath,
    [
      '--expose-gc',
      path.join(PACKAGE_ROOT, 'dist/scripts/anvil.js'),
      'serve',
      '--port',
      '0',
      '--log-dir',
      logDir,
      '--config',
      cfg,
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const line: string = await new Promise((resolve) => {
    let buf = '';
    child.stdout!.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) resolve(buf);
    });
  });
  const url = /(ws:\/\/\S+\/v1\/ws)/.exec(line)![1]!;
  return { child, url, http: url.replace('ws://', 'http://').replace('/v1/ws', '') };
}

async function heap(http: string): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < 3; i++)
    best = Math.min(best, (await (await fetch(`${http}/healthz?gc=1`)).json()).memory.heapUsed);
  return best;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

say('# Server load benchmark');
say();
say(
  `Host: ${os.cpus()[0]?.model}, ${os.availableParallelism()} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.`,
);
say(
  `Server in its own process; load from ${values.connections} MessagePack connections in another. Identical code on one task and seed: after the first step every verdict is a cache hit, so the figures are the server's own cost (decode, validate, episode, reward, feedback, log write with writeSync, encode).`,
);
say();
say(
  '| open episodes | heap per idle episode | offered steps/s | answered steps/s | p50 ms | p99 ms | max ms | errors |',
);
say('|---|---|---|---|---|---|---|---|');

for (const E of values.episodes!.split(',').map(Number)) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-load-'));
  const { child, url, http } = await boot(dir);
  try {
    const conns = await Promise.all(Array.from({ length: Number(values.connections) }, () => Conn.open(url)));
    const base = await heap(http);
    log(`${E} episodes: opening…`);
    const episodes: Array<{ conn: Conn; id: string }> = [];
    for (let i = 0; episodes.length < E; i++) {
      const conn = conns[i % conns.length]!;
      const r = await conn.call({
        op: 'reset',
        task: 'vector_add',
        seed: 1,
        group: { size: Math.min(64, E - episodes.length) },
        options: { maxTurns: 64 },
      });
      if (!r.ok) throw new Error(JSON.stringify(r.error));
      for (const e of r.episodes) episodes.push({ conn, id: e.episode });
    }
    const perEpisode = ((await heap(http)) - base) / E;
    log('warming the cache…');
    const warm = await episodes[0]!.conn.call({ op: 'step', episode: episodes[0]!.id, action: CODE });
    if (warm.info.outcome !== 'ok') throw new Error(`warm-up step: ${warm.info.outcome}`);
    const rate = Number(values.rate);
    const total = rate * Number(values.seconds);
    const latencies: number[] = [];
    let errors = 0;
    let next = 1;
    const busy = new Set<number>();
    const t0 = performance.now();
    log(`offering ${rate} steps/s for ${values.seconds} s…`);
    await new Promise<void>((done) => {
      let sent = 0;
      let answered = 0;
      const tick = setInterval(() => {
        const due = Math.floor(((performance.now() - t0) / 1000) * rate);
        while (sent < Math.min(due, total)) {
          let k = next;
          while (busy.has(k)) k = (k + 1) % episodes.length;
          next = (k + 1) % episodes.length;
          busy.add(k);
          const ep = episodes[k]!;
          const s0 = performance.now();
          sent++;
          void ep.conn.call({ op: 'step', episode: ep.id, action: CODE, meta: { n: sent } }).then((r) => {
            latencies.push(performance.now() - s0);
            if (!r.ok || r.info?.outcome !== 'ok') errors++;
            busy.delete(k);
            if (++answered === total) {
              clearInterval(tick);
              done();
            }
          });
        }
      }, 1);
    });
    const seconds = (performance.now() - t0) / 1000;
    say(
      `| ${E} | ${(perEpisode / 1024).toFixed(1)} KB | ${rate} | ${(total / seconds).toFixed(0)} | ${pct(latencies, 50).toFixed(2)} | ${pct(latencies, 99).toFixed(2)} | ${Math.max(...latencies).toFixed(1)} | ${errors} |`,
    );
    for (const c of conns) c.ws.close();
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}
say();
say(
  'Targets (2-core machine): 10,000 open episodes; p99 added latency under 20 ms at 2,000 steps/s; under 50 KB per idle episode.',
);
writeFileSync(values.out!, `${lines.join('\n')}\n`);
log(`written to ${values.out}`);

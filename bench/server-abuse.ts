/** Abuse benchmark (not a test), loopback only: an `anvil serve` process, an
 * attacker process, and a legitimate trainer measured in this process.
 *
 * Phase 1, baseline: the trainer alone.
 * Phase 2, connection flood, held by the attacker process: 20,000 half-open TCP
 *   sockets (connected, never a byte), 2,000 WebSockets that never say hello, and
 *   100 sockets each sending a 15 MiB frame in pieces before hello; whatever the
 *   server closes is opened again (at most --reopen-rate per second), for as long
 *   as the phase lasts. The attacker uses source addresses 127.0.1.1–127.0.1.200
 *   (all loopback), as many hosts would; the trainer connects from 127.0.0.1.
 * Phase 3, crafted replies: another client sends groups of six replies built to
 *   be quadratic for regular expressions ("<kernel>" 65,000 times; 256 KiB of
 *   unclosed comments), each group different, one group after another with
 *   --crafted-pause-ms between them, while the trainer steps.
 *
 * The trainer measures reset + cached step (p50/p99) and a fresh connect + hello;
 * the server's resident memory is read from /proc.
 *   node dist/bench/server-abuse.js [--seconds 30] [--out docs/benchmarks/server-abuse.md]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { PACKAGE_ROOT } from '../tasks/paths.js';

const { values } = parseArgs({
  options: {
    role: { type: 'string', default: 'bench' },
    port: { type: 'string' },
    seconds: { type: 'string', default: '30' },
    tcp: { type: 'string', default: '20000' },
    ws: { type: 'string', default: '2000' },
    frames: { type: 'string', default: '100' },
    'reopen-rate': { type: 'string', default: '1000' },
    /** Pause between groups of crafted replies; 0 sends them back to back. */
    'crafted-pause-ms': { type: 'string', default: '500' },
    out: { type: 'string', default: 'docs/benchmarks/server-abuse.md' },
  },
});

const SOURCES = Array.from({ length: 200 }, (_, i) => `127.0.1.${i + 1}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The attacker's three kinds of socket; each calls `done` once the server has closed it. */
type Opener = (port: number, localAddress: string, done: () => void) => void;
const OPENERS: Record<'tcp' | 'ws' | 'frames', Opener> = {
  /** Connected, never a byte. */
  tcp: (port, localAddress, done) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    s.on('error', () => undefined);
    s.on('close', done);
  },
  /** A WebSocket that never says hello. */
  ws: (port, localAddress, done) => {
    const w = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, { localAddress });
    w.on('error', () => undefined);
    w.on('close', done);
  },
  /** A 15 MiB frame sent in pieces before hello. */
  frames: (port, localAddress, done) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress }, () => {
      s.write(
        `GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${Buffer.alloc(16, 7).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
      const header = Buffer.alloc(14);
      header[0] = 0x82;
      header[1] = 0x80 | 127;
      header.writeBigUInt64BE(15n * 1024n * 1024n, 2);
      s.write(header);
      const piece = Buffer.alloc(256 * 1024, 1);
      let sent = 0;
      const more = () => {
        if (s.destroyed || sent >= 15 * 1024 * 1024) return;
        sent += piece.length;
        s.write(piece, () => setTimeout(more, 50));
      };
      more();
    });
    s.on('error', () => undefined);
    s.on('close', done);
  },
};

/** The attacker: holds what it can of its sockets, reopening closed ones at a bounded rate, until the time is up. */
async function attacker(port: number, seconds: number): Promise<void> {
  const end = Date.now() + seconds * 1000;
  const open = { tcp: 0, ws: 0, frames: 0 };
  const opened = { tcp: 0, ws: 0, frames: 0 };
  let budget = 0;
  const rate = Number(values['reopen-rate']);
  const refill = setInterval(() => (budget = Math.min(rate, budget + rate / 10)), 100);
  let n = 0;
  const src = () => SOURCES[n++ % SOURCES.length]!;
  const ticket = async () => {
    while (budget < 1) {
      if (Date.now() > end) return false;
      await sleep(20);
    }
    budget--;
    return Date.now() < end;
  };
  const keep = async (kind: keyof typeof OPENERS, count: number) => {
    const one = async (): Promise<void> => {
      if (!(await ticket())) return;
      open[kind]++;
      opened[kind]++;
      OPENERS[kind](port, src(), () => {
        open[kind]--;
        void one();
      });
    };
    for (let i = 0; i < count; i++) void one();
  };
  // The first wave is opened as fast as the budget allows, then only what closes.
  budget = Number(values.tcp) + Number(values.ws) + Number(values.frames);
  void keep('frames', Number(values.frames));
  void keep('ws', Number(values.ws));
  void keep('tcp', Number(values.tcp));
  const report = setInterval(() => process.stdout.write(`${JSON.stringify({ open, opened })}\n`), 1000);
  while (Date.now() < end) await sleep(200);
  clearInterval(refill);
  clearInterval(report);
  process.stdout.write(`${JSON.stringify({ open, opened, final: true })}\n`);
  process.exit(0);
}

/** A minimal trainer: one connection, JSON frames, answers by id. */
class Trainer {
  private waiters = new Map<string | number, (f: any) => void>();
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      const f = JSON.parse(d.toString());
      if (f.event === 'progress') return;
      this.waiters.get(f.id)?.(f);
      this.waiters.delete(f.id);
    });
  }
  static async connect(url: string): Promise<Trainer> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    const t = new Trainer(ws);
    const hello = await t.call({ op: 'hello', protocol: 1 });
    if (!hello.ok) throw new Error(`hello: ${JSON.stringify(hello.error)}`);
    return t;
  }
  private next = 0;
  call(m: Record<string, unknown>, timeoutMs = 60_000): Promise<any> {
    const id = ++this.next;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${m.op} in ${timeoutMs} ms`)), timeoutMs);
      this.waiters.set(id, (f) => {
        clearTimeout(timer);
        resolve(f);
      });
      this.ws.send(JSON.stringify({ id, ...m }));
    });
  }
  close(): void {
    this.ws.close();
  }
}

const GOOD =
  '```c\nvoid solve(const float *a, const float *b, float *out, int n) {\n  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];\n}\n```';

function rssMiB(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0) / 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN;
};

async function measure(url: string, trainer: Trainer, seconds: number, serverPid: number) {
  const step: number[] = [];
  const stepOnly: number[] = [];
  const join: number[] = [];
  const failures: string[] = [];
  let peak = 0;
  const end = Date.now() + seconds * 1000;
  let i = 0;
  while (Date.now() < end) {
    const t0 = performance.now();
    try {
      const r = await trainer.call({ op: 'reset', task: 'vector_add', seed: 1 }, 10_000);
      if (!r.ok) throw new Error(`reset: ${r.error.code}`);
      const s0 = performance.now();
      const s = await trainer.call({ op: 'step', episode: r.episodes[0].episode, action: GOOD }, 10_000);
      stepOnly.push(performance.now() - s0);
      if (!s.ok || s.info?.outcome !== 'ok') throw new Error(`step: ${JSON.stringify(s.error ?? s.info?.outcome)}`);
      await trainer.call({ op: 'close', episode: r.episodes[0].episode }, 10_000);
      step.push(performance.now() - t0);
    } catch (e) {
      failures.push((e as Error).message);
    }
    if (i++ % 10 === 0) {
      const j0 = performance.now();
      try {
        const fresh = await Trainer.connect(url);
        join.push(performance.now() - j0);
        fresh.close();
      } catch (e) {
        failures.push(`connect: ${(e as Error).message}`);
      }
      peak = Math.max(peak, rssMiB(serverPid).rss);
    }
    await sleep(20);
  }
  return {
    n: step.length,
    p50: pct(step, 0.5),
    p99: pct(step, 0.99),
    max: pct(step, 1),
    stepP50: pct(stepOnly, 0.5),
    stepP99: pct(stepOnly, 0.99),
    joins: join.length,
    joinP99: pct(join, 0.99),
    failures,
    rssPeak: Math.max(peak, rssMiB(serverPid).rss),
  };
}

type Measured = Awaited<ReturnType<typeof measure>>;
const shell = (cmd: string) => spawn('bash', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
// Server and attacker may hold more descriptors than the default soft limit; raise it where allowed.
const RAISE_FDS = 'ulimit -n 65536 2>/dev/null; ulimit -n >&2; exec';

async function bench(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-abuse-'));
  const children: ChildProcess[] = [];
  const cleanup = () => {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  try {
    const { server, url, serverFdLimit } = await startServer(dir, children);
    const seconds = Number(values.seconds);
    const trainer = await Trainer.connect(url);
    // Warm: the first step compiles and measures; later ones are answered from the cache.
    const r = await trainer.call({ op: 'reset', task: 'vector_add', seed: 1 });
    await trainer.call({ op: 'step', episode: r.episodes[0].episode, action: GOOD }, 120_000);
    await trainer.call({ op: 'close', episode: r.episodes[0].episode });

    const rssStart = rssMiB(server.pid!).rss;
    const baseline = await measure(url, trainer, Math.min(10, seconds), server.pid!);
    const flood = await floodPhase(url, trainer, seconds, server.pid!, children);
    const crafted = await craftedPhase(url, trainer, seconds, server.pid!);
    trainer.close();
    const lines = reportLines({ serverFdLimit, seconds, baseline, flood, crafted, rssStart });
    writeFileSync(values.out!, `${lines.join('\n')}\n`);
    console.log(lines.join('\n'));
  } finally {
    cleanup();
  }
  process.exit(0);
}

/** `anvil serve` in a process of its own, with the default limits (a pool of 2), once it listens. */
async function startServer(
  dir: string,
  children: ChildProcess[],
): Promise<{ server: ChildProcess; url: string; serverFdLimit: string }> {
  const CLI = path.join(PACKAGE_ROOT, 'dist', 'scripts', 'anvil.js');
  writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({ poolSize: 2, eval: { timingBudgetMs: 250, minReps: 3, maxReps: 12 } }),
  );
  const server = shell(
    `${RAISE_FDS} ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} serve --port 0 --config ${dir}/config.json --log-dir ${dir}/logs`,
  );
  children.push(server);
  let serverErr = '';
  server.stderr!.on('data', (d) => (serverErr += d));
  const line: string = await new Promise((resolve, reject) => {
    let buf = '';
    server.stdout!.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) resolve(buf);
    });
    server.once('exit', (c) => reject(new Error(`server exited ${c}: ${serverErr}`)));
  });
  const url = /(ws:\/\/\S+\/v1\/ws)/.exec(line)![1]!;
  return { server, url, serverFdLimit: serverErr.trim().split('\n')[0]! };
}

interface FloodPhase {
  measured: Measured;
  maxOpen: { tcp: number; ws: number; frames: number };
  attackerSeen: any;
  attackerFdLimit: string;
}

/** Phase 2: the attacker process floods the server while the trainer steps. */
async function floodPhase(
  url: string,
  trainer: Trainer,
  seconds: number,
  serverPid: number,
  children: ChildProcess[],
): Promise<FloodPhase> {
  const port = Number(new URL(url).port);
  const att = shell(
    `${RAISE_FDS} ${JSON.stringify(process.execPath)} ${JSON.stringify(new URL(import.meta.url).pathname)} --role attacker --port ${port} --seconds ${seconds + 15} --tcp ${values.tcp} --ws ${values.ws} --frames ${values.frames} --reopen-rate ${values['reopen-rate']}`,
  );
  children.push(att);
  let attackerFdLimit = '';
  att.stderr!.on('data', (d) => (attackerFdLimit ||= String(d).trim()));
  let last: any = null;
  const maxOpen = { tcp: 0, ws: 0, frames: 0 };
  att.stdout!.on('data', (d) => {
    for (const l of String(d).split('\n').filter(Boolean)) {
      last = JSON.parse(l);
      for (const k of ['tcp', 'ws', 'frames'] as const) maxOpen[k] = Math.max(maxOpen[k], last.open[k]);
    }
  });
  await sleep(15_000); // the flood builds up
  const measured = await measure(url, trainer, seconds, serverPid);
  const attackerSeen = last;
  await new Promise((r) => att.once('exit', r));
  return { measured, maxOpen, attackerSeen, attackerFdLimit };
}

/** Phase 3: crafted replies from another client, six at a time, each group new. */
async function craftedPhase(url: string, trainer: Trainer, seconds: number, serverPid: number): Promise<CraftedPhase> {
  const crafter = await Trainer.connect(url);
  let sent = 0;
  let stop = false;
  const crafting = (async () => {
    for (let g = 0; !stop; g++) {
      const eps = (await crafter.call({ op: 'reset', task: 'vector_add', group: { size: 6 } })).episodes;
      await Promise.all(
        eps.map((e: any, k: number) => {
          const text = k % 2 ? `${'<kernel>'.repeat(65_000)} ${g}` : `\`\`\`c\n/* ${g} ${k} */ ${'/*'.repeat(131_000)}`;
          sent++;
          return crafter.call({ op: 'step', episode: e.episode, action: text }, 120_000);
        }),
      );
      await sleep(Number(values['crafted-pause-ms']));
    }
  })();
  const measured = await measure(url, trainer, seconds, serverPid);
  stop = true;
  await crafting.catch(() => undefined);
  const rssEnd = rssMiB(serverPid); // read while the crafter is still connected
  crafter.close();
  return { measured, sent, rssEnd };
}

interface CraftedPhase {
  measured: Measured;
  sent: number;
  rssEnd: { rss: number; hwm: number };
}

interface Phases {
  serverFdLimit: string;
  seconds: number;
  baseline: Measured;
  flood: FloodPhase;
  crafted: CraftedPhase;
  rssStart: number;
}

function reportLines({ serverFdLimit, seconds, baseline, flood, crafted, rssStart }: Phases): string[] {
  const { rssEnd } = crafted;
  const row = (name: string, m: Measured) =>
    `| ${name} | ${m.n} | ${m.stepP50.toFixed(1)} | ${m.stepP99.toFixed(1)} | ${m.p50.toFixed(1)} | ${m.p99.toFixed(1)} | ${m.max.toFixed(1)} | ${m.joins} | ${m.joinP99.toFixed(1)} | ${m.failures.length} | ${m.rssPeak.toFixed(0)} |`;
  const failures = [...flood.measured.failures, ...crafted.measured.failures];
  return [
    '# Server under abuse (loopback)',
    '',
    `Host: ${os.cpus()[0]?.model}, ${os.availableParallelism()} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}; shared with other work while this ran, so latencies are noisier than on a quiet machine.`,
    `Server: \`anvil serve\` with the default limits (pool of 2), descriptor limit ${serverFdLimit}; attacker: a separate process, descriptor limit ${flood.attackerFdLimit}, ${SOURCES.length} loopback source addresses, reopening what the server closes at up to ${values['reopen-rate']}/s.`,
    `Attack: ${values.tcp} half-open TCP sockets, ${values.ws} hello-less WebSockets, ${values.frames} × 15 MiB partial frames; most the attacker held open at once: ${JSON.stringify(flood.maxOpen)}; opened over the phase: ${JSON.stringify(flood.attackerSeen?.opened)}.`,
    'Trainer: from 127.0.0.1, reset + step (a cached verdict) + close, back to back; every tenth round also a fresh connection and hello.',
    '',
    '| phase | rounds | step p50 ms | step p99 ms | reset+step+close p50 ms | p99 ms | max ms | fresh connects | connect+hello p99 ms | failures | server RSS peak MiB |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    row('baseline', baseline),
    row(`connection flood (${seconds} s)`, flood.measured),
    row(
      `crafted replies (${crafted.sent} sent in groups of 6, ${values['crafted-pause-ms']} ms between groups, ${seconds} s)`,
      crafted.measured,
    ),
    '',
    `Server RSS: ${rssStart.toFixed(0)} MiB before the attack, ${rssEnd.rss.toFixed(0)} MiB after, ${rssEnd.hwm.toFixed(0)} MiB at its highest (VmHWM).`,
    ...(failures.length ? ['', `Failures: ${[...new Set(failures)].slice(0, 5).join('; ')}`] : []),
  ];
}

if (values.role === 'attacker') await attacker(Number(values.port), Number(values.seconds));
else await bench();

/** Distributed evaluation: a real redis-server (Debian's) on a loopback port,
 * two servers and three workers as separate processes. Episodes are stepped
 * through both servers while a worker is SIGKILLed and Redis is stopped and
 * started again; no step may be lost or logged twice. */
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import { FAST } from './helpers.js';
import { GOOD_VECTOR_ADD, Wire } from './wire.js';

const CLI = path.join(PACKAGE_ROOT, 'dist', 'scripts', 'anvil.js');
const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-queue-'));
const children: ChildProcess[] = [];
t.teardown(() => {
  for (const c of children) c.kill('SIGKILL');
});

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Starts a process and waits for a line matching `ready` on its stdout. */
async function start(cmd: string, args: string[], ready: RegExp): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  child.stderr!.resume();
  const line: string = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d) => {
      buf += d;
      const m = buf.split('\n').find((l) => ready.test(l));
      if (m) resolve(m);
    });
    child.once('exit', (code) => reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${buf}`)));
  });
  child.stdout!.resume();
  return { child, line };
}

const redisPort = await freePort();
const redisUrl = `redis://127.0.0.1:${redisPort}`;
const startRedis = () =>
  start(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    /Ready to accept connections/,
  );
let redis = await startRedis();

const config = path.join(dir, 'config.json');
writeFileSync(config, JSON.stringify({ eval: { ...FAST, callTimeoutMs: 30_000 }, poolSize: 2 }));
const workers = await Promise.all(
  [1, 2, 3].map(() =>
    start(
      process.execPath,
      [
        CLI,
        'worker',
        '--redis',
        redisUrl,
        '--concurrency',
        '1',
        '--lock-ms',
        '2000',
        '--stalled-ms',
        '1000',
        '--max-stalled',
        '3',
      ],
      /anvil worker/,
    ),
  ),
);
const servers = await Promise.all(
  [1, 2].map(async (i) => {
    const s = await start(
      process.execPath,
      [CLI, 'serve', '--port', '0', '--redis', redisUrl, '--config', config, '--log-dir', path.join(dir, `logs${i}`)],
      /anvil serving/,
    );
    return { ...s, url: /(ws:\/\/\S+\/v1\/ws)/.exec(s.line)![1]!, logs: path.join(dir, `logs${i}`) };
  }),
);

const variant = (k: number) =>
  GOOD_VECTOR_ADD.replace('out[i] = a[i] + b[i];', `out[i] = a[i] + b[i]; /* variant ${k} */`);

function records(): Array<Record<string, any>> {
  const out = [];
  for (const s of servers)
    for (const f of readdirSync(s.logs).filter((f) => f.endsWith('.jsonl')))
      for (const l of readFileSync(path.join(s.logs, f), 'utf8').split('\n')) if (l) out.push(JSON.parse(l));
  return out;
}

/** Steps every episode once, retrying `busy` as a client should; returns the results. */
async function stepAll(
  w: Wire,
  eps: string[],
  code: (i: number) => string,
  tag: string,
): Promise<Array<Record<string, any>>> {
  return Promise.all(
    eps.map(async (ep, i) => {
      for (let attempt = 0; ; attempt++) {
        const r = await w.call({ id: `${tag}-${i}-${attempt}`, op: 'step', episode: ep, action: code(i) }, 180_000);
        if (r.ok) return r;
        if (r.error.code !== 'busy' || attempt > 200) throw new Error(JSON.stringify(r.error));
        await new Promise((res) => setTimeout(res, r.error.retryAfterMs ?? 500));
      }
    }),
  );
}

t.test('two servers share three workers; results are shared; health shows the workers', async (t) => {
  const [a, b] = await Promise.all(servers.map((s) => Wire.open(s.url)));
  t.teardown(() => {
    a!.close();
    b!.close();
  });
  for (const w of [a!, b!]) await w.call({ id: 'h', op: 'hello', protocol: 1 });
  const epsA = (await a!.call({ id: 'r', op: 'reset', task: 'vector_add', seed: 5, group: { size: 4 } })).episodes.map(
    (e: { episode: string }) => e.episode,
  );
  const epsB = (await b!.call({ id: 'r', op: 'reset', task: 'vector_add', seed: 5, group: { size: 4 } })).episodes.map(
    (e: { episode: string }) => e.episode,
  );
  const [ra, rb] = await Promise.all([stepAll(a!, epsA, variant, 'a'), stepAll(b!, epsB, variant, 'b')]);
  t.ok(
    [...ra, ...rb].every((r) => r.info.outcome === 'ok'),
    'every step evaluated correctly',
  );
  const http = servers[0]!.url.replace('ws://', 'http://').replace('/v1/ws', '');
  const health = await (await fetch(`${http}/healthz`)).json();
  t.equal(health.queue.reachable, true);
  t.equal(health.workers.filter((w: { kind: string }) => w.kind === 'queue worker').length, 3, 'three live workers');
  const metrics = await (await fetch(`${http}/metrics`)).text();
  // 8 steps, 4 distinct (task, code, seed): the queue ran 4 jobs.
  t.match(
    metrics,
    /anvil_queue_jobs\{state="completed"\} 4\n/,
    `identical work evaluated once across the cluster: ${metrics
      .split('\n')
      .filter((l) => l.startsWith('anvil_queue_jobs') || l.startsWith('anvil_worker_jobs'))
      .join('; ')}`,
  );
  // Each server counts the jobs it submitted, by worker: either may have submitted all four.
  const both = (
    await Promise.all(
      servers.map(async (s) =>
        (await fetch(`${s.url.replace('ws://', 'http://').replace('/v1/ws', '')}/metrics`)).text(),
      ),
    )
  ).join('\n');
  t.match(both, /anvil_worker_jobs_total\{worker="[^"]+"\} [1-9]/);
});

t.test('a worker SIGKILLed mid-job: another finishes its work; nothing lost or logged twice', async (t) => {
  const w = await Wire.open(servers[0]!.url);
  t.teardown(() => w.close());
  await w.call({ id: 'h', op: 'hello', protocol: 1 });
  const eps = (await w.call({ id: 'r', op: 'reset', task: 'sgemm', seed: 8, group: { size: 6 } })).episodes.map(
    (e: { episode: string }) => e.episode,
  );
  const sgemm = (k: number) =>
    '```c\nvoid solve(const float *A, const float *B, float *C, int M, int N, int K) {\n  for (int i = 0; i < M; i++) for (int j = 0; j < N; j++) { float s = 0; for (int k = 0; k < K; k++) s += A[i*K+k] * B[k*N+j]; C[i*N+j] = s; }\n}\n/* ' +
    k +
    ' */\n```';
  const pending = stepAll(w, eps, sgemm, 'k');
  await new Promise((r) => setTimeout(r, 1500));
  workers[0]!.child.kill('SIGKILL');
  const results = await pending;
  t.equal(results.length, 6, 'every step answered');
  t.ok(
    results.every((r) => r.info.outcome === 'ok'),
    JSON.stringify(results.map((r) => r.info.outcome)),
  );
});

t.test('a cancelled step stops its job on the worker that runs it', async (t) => {
  const w = await Wire.open(servers[0]!.url);
  t.teardown(() => w.close());
  await w.call({ id: 'h', op: 'hello', protocol: 1 });
  const ep = (await w.call({ id: 'r', op: 'reset', task: 'vector_add', seed: 21 })).episodes[0].episode;
  const loop =
    '```c\nvoid solve(const float *a, const float *b, float *out, int n) { for (volatile int x = 0;; x++) {} }\n```';
  w.send({ id: 'loop', op: 'step', episode: ep, action: loop });
  const http = servers[0]!.url.replace('ws://', 'http://').replace('/v1/ws', '');
  const active = async () => {
    const h = await (await fetch(`${http}/healthz`)).json();
    return Number(/(\d+) active/.exec(h.workers.find((x: { id: string }) => x.id === 'queue').state)![1]);
  };
  for (let i = 0; i < 100 && (await active()) === 0; i++) await new Promise((r) => setTimeout(r, 100));
  t.equal(await active(), 1, 'the looping job runs on a worker');
  await new Promise((r) => setTimeout(r, 1500));
  await w.call({ id: 'c', op: 'cancel', target: 'loop' });
  const r = await w.next((f) => f.id === 'loop' && f.event === 'result', 10_000);
  t.equal(r.reason, 'cancelled');
  let left = 1;
  for (let i = 0; i < 50 && (left = await active()) > 0; i++) await new Promise((res) => setTimeout(res, 100));
  t.equal(left, 0, 'the worker dropped the job well before its 30 s call limit');
});

t.test(
  'Redis stopped and started again under load: busy meanwhile, then every admitted step answered once',
  async (t) => {
    const w = await Wire.open(servers[1]!.url);
    t.teardown(() => w.close());
    await w.call({ id: 'h', op: 'hello', protocol: 1 });
    const eps = (await w.call({ id: 'r', op: 'reset', task: 'vector_add', seed: 13, group: { size: 5 } })).episodes.map(
      (e: { episode: string }) => e.episode,
    );
    const pending = stepAll(w, eps, (i) => variant(100 + i), 'x');
    await new Promise((r) => setTimeout(r, 300));
    redis.child.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 2500));
    const extra = (await w.call({ id: 'r2', op: 'reset', task: 'vector_add', seed: 14 })).episodes[0].episode;
    const refused = await w.call({ id: 'during', op: 'step', episode: extra, action: GOOD_VECTOR_ADD });
    t.equal(refused.error?.code, 'busy', 'new steps are refused with busy while Redis is away');
    redis = await startRedis();
    const results = await pending;
    t.equal(results.length, 5);
    t.ok(
      results.every((r) => r.event === 'result'),
      'no admitted step lost',
    );
    const after = await stepAll(w, [extra], () => GOOD_VECTOR_ADD, 'after');
    t.equal(after[0]!.info.outcome, 'ok', 'recovered by itself');
  },
);

t.test('across everything: one log record per answered step', async (t) => {
  const recs = records();
  const keys = recs.map((r) => `${r.episode}/${r.turn}`);
  t.equal(new Set(keys).size, keys.length, 'no step logged twice');
  t.equal(recs.length, 8 + 6 + 1 + 5 + 1, 'no answered step missing from the logs');
});

t.test('the same code in replies worded differently is one job across the cluster', async (t) => {
  const [a, b] = await Promise.all(servers.map((s) => Wire.open(s.url)));
  t.teardown(() => {
    a!.close();
    b!.close();
  });
  const http = servers[0]!.url.replace('ws://', 'http://').replace('/v1/ws', '');
  const completed = async () =>
    Number(/anvil_queue_jobs\{state="completed"\} (\d+)\n/.exec(await (await fetch(`${http}/metrics`)).text())?.[1]);
  const before = await completed();
  const [ra, rb] = await Promise.all(
    [a!, b!].map(async (w, i) => {
      await w.call({ id: 'h', op: 'hello', protocol: 1 });
      const ep = (await w.call({ id: 'r', op: 'reset', task: 'vector_add', seed: 6 })).episodes[0].episode;
      const reply = i === 0 ? `Here is my kernel.\n${variant(100)}` : `${variant(100)}\nIt adds the two arrays.`;
      return (await stepAll(w, [ep], () => reply, `w${i}`))[0]!;
    }),
  );
  t.equal(ra!.info.outcome, 'ok');
  t.equal(rb!.info.outcome, 'ok');
  t.equal((await completed()) - before, 1, 'one job for the two replies');
});

t.test('torch jobs go to the torch workers of their device kind, never to C workers or to another kind', async (t) => {
  await start(
    process.execPath,
    [CLI, 'worker', '--redis', redisUrl, '--backend', 'torch', '--device-kind', 'cpu'],
    /backend torch, device kind cpu/,
  );
  const code = readFileSync(path.join(PACKAGE_ROOT, 'test', 'torch', 'gelu_cpu_ext.py'), 'utf8');
  const w = await Wire.open(await torchServer('cpu'));
  t.teardown(() => w.close());
  await w.call({ id: 1, op: 'hello', protocol: 1 });
  const ep = (await w.call({ id: 2, op: 'reset', task: 'gelu' })).episodes[0].episode;
  const [r] = await stepAll(w, [ep], () => `\`\`\`python\n${code}\`\`\``, 'torch');
  t.equal(r!.info.outcome, 'ok', JSON.stringify(r!.info).slice(0, 400));
  await gpuJobWaitsForAGpuWorker(t, code);
});

/** A server on the torch task set whose jobs go to workers of device kind `kind`: its WebSocket URL. */
async function torchServer(kind: string): Promise<string> {
  const s = await start(
    process.execPath,
    [
      CLI,
      'serve',
      '--port',
      '0',
      '--redis',
      redisUrl,
      '--taskset',
      'builtin-torch',
      '--device-kind',
      kind,
      '--log-dir',
      path.join(dir, `logs-torch-${kind}`),
    ],
    /anvil serving/,
  );
  return /(ws:\/\/\S+\/v1\/ws)/.exec(s.line)![1]!;
}

/** A GPU job waits for a GPU worker: the CPU torch worker and the C workers leave it alone. */
async function gpuJobWaitsForAGpuWorker(t: Test, code: string): Promise<void> {
  const { Queue } = await import('bullmq');
  const { queueName, redisConnection } = await import('../sandbox/queue.js');
  const gpuUrl = await torchServer('gpu');
  const healthz = gpuUrl.replace('ws://', 'http://').replace('/v1/ws', '/healthz');
  for (
    let i = 0;
    i < 100 && !((await (await fetch(healthz)).json()) as { queue?: { reachable: boolean } }).queue?.reachable;
    i++
  )
    await new Promise((res) => setTimeout(res, 100));
  const g = await Wire.open(gpuUrl);
  t.teardown(() => g.close());
  await g.call({ id: 1, op: 'hello', protocol: 1 });
  const gep = (await g.call({ id: 2, op: 'reset', task: 'gelu' })).episodes[0].episode;
  g.send({
    id: 3,
    op: 'step',
    episode: gep,
    action: `\`\`\`python\n${code.replace('gelu_cpu', 'gelu_cpu_gpu_queue')}\`\`\``,
  });
  const conn = redisConnection(redisUrl);
  const gpuQueue = new Queue(queueName('torch', 'gpu'), { connection: conn });
  t.teardown(async () => {
    await gpuQueue.close();
    conn.disconnect(); // a connection passed in is left open by close()
  });
  const counts = () => gpuQueue.getJobCounts('waiting', 'active', 'completed');
  for (let i = 0; i < 100 && (await counts()).waiting === 0; i++) await new Promise((res) => setTimeout(res, 100));
  await new Promise((res) => setTimeout(res, 3000));
  t.same(await counts(), { waiting: 1, active: 0, completed: 0 }, 'the GPU job is still waiting after 3 s');
  await gpuQueue.obliterate({ force: true });
}

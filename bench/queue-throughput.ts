/** Benchmark of distributed evaluation (not a test): C evaluations per second
 * through the queue with 1, 2 and 4 worker processes against the in-process
 * pool, and the latency the queue adds to one job. A redis-server is started on
 * a free loopback port and stopped at the end.
 *
 *   node dist/bench/queue-throughput.js [--out docs/benchmarks/queue.md]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { evaluationService, localService } from '../sandbox/service.js';
import { loadTaskSet, solutionFiles } from '../tasks/loader.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';

const { values } = parseArgs({ options: { out: { type: 'string', default: 'docs/benchmarks/queue.md' } } });
const log = (s: string) => process.stderr.write(`${s}\n`);
const lines: string[] = [];
const say = (s = '') => {
  lines.push(s);
  console.log(s);
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const set = loadTaskSet('builtin-c');
const CLI = path.join(PACKAGE_ROOT, 'dist', 'scripts', 'anvil.js');
const children: ChildProcess[] = [];
const cleanup = () => children.forEach((c) => c.kill('SIGKILL'));
process.on('exit', cleanup);

const port: number = await new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as net.AddressInfo).port;
    s.close(() => resolve(p));
  });
});
const url = `redis://127.0.0.1:${port}`;
async function run(cmd: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(c);
  await new Promise<void>((resolve) => {
    let buf = '';
    c.stdout!.on('data', (d) => {
      buf += d;
      if (ready.test(buf)) resolve();
    });
  });
  c.stdout!.resume();
  return c;
}
await run(
  'redis-server',
  ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
  /Ready to accept connections/,
);

const mixIds = ['vector_add', 'softmax_rows', 'sgemm', 'conv2d', 'layernorm_rows', 'matvec', 'gelu', 'sum_reduce'];
const mix = mixIds.map((id) => ({
  task: set.tasks.get(id)!,
  code: readFileSync(solutionFiles(set.tasks.get(id)!)[0]!, 'utf8'),
}));

say('# Distributed evaluation benchmark');
say();
say(
  `Host: ${os.cpus()[0]?.model}, ${os.availableParallelism()} cores, Node ${process.version}, Redis on loopback, ${new Date().toISOString().slice(0, 10)}.`,
);
say(
  'Timing phases never overlap on a host (a host-wide lock), so on one 2-core machine more workers add compile and correctness concurrency only.',
);
say();

// Added latency: a job that does almost nothing (a reply with no code), through the queue and in process.
log('latency…');
const local = localService('c', { poolSize: 2, cacheSize: 0 });
const worker = await run(process.execPath, [CLI, 'worker', '--redis', url, '--concurrency', '2'], /anvil worker/);
const queued = evaluationService('c', { redis: url, taskset: 'builtin-c' });
await new Promise((r) => setTimeout(r, 1500));
const task = set.tasks.get('vector_add')!;
const lat = { local: [] as number[], queue: [] as number[] };
for (let i = 0; i < 200; i++) {
  for (const [name, ev] of [
    ['local', local],
    ['queue', queued],
  ] as const) {
    const t0 = performance.now();
    const r = await ev.evaluate({ task, reply: `no code here, request ${name} ${i}`, seed: i });
    if (r.outcome !== 'no_code') throw new Error(`${name}: ${r.outcome}`);
    lat[name].push(performance.now() - t0);
  }
}
worker.kill('SIGTERM');
say('## Latency the queue adds to one job');
say();
say('| path | median ms | p90 ms |');
say('|---|---|---|');
say(`| in process | ${median(lat.local).toFixed(2)} | ${[...lat.local].sort((a, b) => a - b)[179]!.toFixed(2)} |`);
say(
  `| through Redis and a worker | ${median(lat.queue).toFixed(2)} | ${[...lat.queue].sort((a, b) => a - b)[179]!.toFixed(2)} |`,
);
say(`| **added by the queue** (target < 5 ms median) | **${(median(lat.queue) - median(lat.local)).toFixed(2)}** | |`);
say();

say('## Evaluations per second on a mix of 8 real evaluations (default settings)');
say();
say('| evaluation path | evaluations/s |');
say('|---|---|');
const t0 = performance.now();
await Promise.all(mix.map((m, i) => local.evaluate({ task: m.task, code: m.code, seed: 1000 + i })));
say(`| in-process pool (2 workers) | ${(mix.length / ((performance.now() - t0) / 1000)).toFixed(2)} |`);
await local.close();
let round = 0;
for (const n of [1, 2, 4]) {
  log(`${n} workers…`);
  const procs = await Promise.all(
    Array.from({ length: n }, () =>
      run(process.execPath, [CLI, 'worker', '--redis', url, '--concurrency', '1'], /anvil worker/),
    ),
  );
  await new Promise((r) => setTimeout(r, 1000));
  round++;
  const t1 = performance.now();
  const results = await Promise.all(
    mix.map((m, i) => queued.evaluate({ task: m.task, code: m.code, seed: round * 100 + i })),
  );
  const bad = results.filter((r) => r.outcome !== 'ok');
  if (bad.length) throw new Error(bad.map((r) => r.message).join('; '));
  say(
    `| queue, ${n} worker process${n > 1 ? 'es' : ''} × 1 | ${(mix.length / ((performance.now() - t1) / 1000)).toFixed(2)} |`,
  );
  for (const p of procs) p.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
}
say();
say('Not measured here: one worker per GPU on a multi-GPU host (the GPU backend does not exist yet).');
await queued.close();
writeFileSync(values.out!, `${lines.join('\n')}\n`);
log(`written to ${values.out}`);
cleanup();
process.exit(0);

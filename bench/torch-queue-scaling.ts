/** Scaling of GPU evaluation over the queue: one `anvil worker --backend torch
 * --gpus i` per GPU, from 1 GPU to all, on a redis-server started here. Each
 * configuration first gives every worker one job (harness start-up, Triton JIT),
 * then times a batch of evaluations submitted at once.
 *
 *   node dist/bench/torch-queue-scaling.js [--jobs 24] [--out FILE.json]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getTask, loadTaskSet, solutionFiles } from '../tasks/loader.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import { evaluationService } from '../sandbox/service.js';
import { listGpus } from '../sandbox/torch-backend.js';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '24' }, out: { type: 'string' } } });
const JOBS = Number(values.jobs);
const CLI = path.join(PACKAGE_ROOT, 'dist', 'scripts', 'anvil.js');
const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

function start(cmd: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d) => {
      buf += d;
      if (ready.test(buf)) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`${cmd} exited with ${code}: ${buf}`)));
  });
}

const port: number = await new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as net.AddressInfo).port;
    s.close(() => resolve(p));
  });
});
await start(
  'redis-server',
  ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
  /Ready to accept connections/,
);
const redisUrl = `redis://127.0.0.1:${port}`;

const set = loadTaskSet('builtin-torch');
const mix = ['gelu', 'silu_mul', 'softmax', 'row_sum', 'layernorm', 'cumsum'].map((id) => {
  const task = getTask(set, id);
  return {
    task,
    code: readFileSync(
      solutionFiles(task).find((f) => f.endsWith('triton.py'))!,
      'utf8',
    ),
  };
});
const gpus = listGpus();
console.log(`${gpus.length} GPUs: ${gpus.map((g) => g.name).join(', ')}`);
const q = evaluationService('torch', { redis: redisUrl, taskset: 'builtin-torch', deviceKind: 'gpu' });
const results: { gpus: number; evalsPerMinute: number; wallS: number; failures: number }[] = [];
let seed = 0;
const batch = async (n: number) => {
  const rs = await Promise.all(
    Array.from({ length: n }, (_, i) => q.evaluate({ ...mix[i % mix.length]!, seed: `scale-${seed++}` })),
  );
  return rs.filter((r) => r.outcome !== 'ok').length;
};
for (const count of [...new Set([1, gpus.length])]) {
  const workers = await Promise.all(
    gpus
      .slice(0, count)
      .map((g) =>
        start(
          process.execPath,
          [CLI, 'worker', '--redis', redisUrl, '--backend', 'torch', '--gpus', String(g.index)],
          /anvil worker/,
        ),
      ),
  );
  await batch(count * 2);
  const t0 = performance.now();
  const failures = await batch(JOBS);
  const wallS = (performance.now() - t0) / 1000;
  results.push({ gpus: count, evalsPerMinute: (60 * JOBS) / wallS, wallS, failures });
  console.log(
    `${count} GPU(s), one worker each: ${JOBS} evaluations in ${wallS.toFixed(1)} s = ${((60 * JOBS) / wallS).toFixed(1)} per minute, ${failures} not ok`,
  );
  for (const w of workers) w.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 2000));
}
if (results.length > 1)
  console.log(
    `scaling 1 → ${gpus.length} GPUs: ${(results[1]!.evalsPerMinute / results[0]!.evalsPerMinute).toFixed(2)}×`,
  );
await q.close();
if (values.out) writeFileSync(values.out, JSON.stringify({ gpus, results }, null, 2));
process.exit(0);

/** How the queue's server side reads a failed job, against a real redis-server
 * and a real worker (in this process): by the registry code the worker put in
 * the job's failure, never by the words of its message. */
import t from 'tap';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { AnvilError } from '../contracts/errors.js';
import { QueueEvents } from 'bullmq';
import {
  failureReason,
  QueueEvaluator,
  QueueWorker,
  queueName,
  readFailure,
  redisConnection,
} from '../sandbox/queue.js';
import { builtin, evaluator } from './helpers.js';
import { GOOD_VECTOR_ADD } from './wire.js';

const port = await new Promise<number>((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as net.AddressInfo).port;
    s.close(() => resolve(p));
  });
});
const redis = spawn(
  'redis-server',
  ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
await new Promise<void>((resolve, reject) => {
  let out = '';
  redis.stdout!.on('data', (d) => (out += d) && /Ready to accept connections/.test(out) && resolve());
  redis.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
});
const url = `redis://127.0.0.1:${port}`;
const local = evaluator();
const worker = new QueueWorker(url, local, { backend: 'c', concurrency: 1 });
const queue = new QueueEvaluator(url, 'builtin-c');
await worker.connected(10_000);
const task = builtin().tasks.get('vector_add')!;

t.test('a failure carries its registry code; words alone are never a code', async (t) => {
  t.same(readFailure(failureReason(new AnvilError('cancelled', 'the evaluation was cancelled'))), {
    code: 'cancelled',
    message: 'the evaluation was cancelled',
  });
  t.same(readFailure(failureReason(new Error('the candidate printed "cancelled"'))), {
    code: null,
    message: 'the candidate printed "cancelled"',
  });
  t.same(
    readFailure('job stalled more than allowable limit'),
    { code: null, message: 'job stalled more than allowable limit' },
    "BullMQ's own reason",
  );
  t.same(readFailure('{"code": "no_such_code", "message": "x"}').code, null, 'a code outside the registry is none');
});

t.test("a job that fails on its worker is the environment's failure, with the worker's message", async (t) => {
  // The worker holds another version of the task than the job asks for.
  const r = await queue.evaluate({ task: { ...task, digest: 'not-this-version' }, code: GOOD_VECTOR_ADD, seed: 1 });
  t.equal(r.outcome, 'env_error');
  t.match(
    r.message,
    /^the evaluation failed on the workers: task vector_add here is version \w+, the job wants not-this-version$/,
  );
});

t.test('a job cancelled by one request runs again for another that still wants it', async (t) => {
  // Slow on its first call in each runner, so that the job is still running when it is cancelled.
  const slow = GOOD_VECTOR_ADD.replace(
    '{',
    '{\n  static int calls;\n  if (!calls++) for (volatile long s = 0; s < 100000000L; s++) {}\n',
  );
  const conn = redisConnection(url);
  const events = new QueueEvents(queueName('c'), { connection: conn });
  const failures: string[] = [];
  events.on('failed', ({ failedReason }) => failures.push(failedReason));
  await events.waitUntilReady();
  t.teardown(() => events.close().then(() => conn.disconnect()));
  const a = new AbortController();
  const first = queue.evaluate({ task, reply: slow, seed: 3 }, { signal: a.signal }).then(
    (r) => r.outcome,
    (e: AnvilError) => e.code,
  );
  for (let i = 0; i < 200 && (await queue.counts()).active === 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal((await queue.counts()).active, 1, 'the job runs');
  const second = queue.evaluate({ task, reply: slow, seed: 3 });
  await new Promise((r) => setTimeout(r, 300));
  a.abort();
  t.equal(await first, 'cancelled');
  const r = await second;
  t.equal(r.outcome, 'ok', r.message);
  t.equal(r.cached, true, "the other request's job");
  t.same(
    failures.map((f) => readFailure(f).code),
    ['cancelled'],
    'it failed as cancelled on the worker, then ran again',
  );
});

// Closed in a test of its own, not a teardown: what is open here keeps the process, and tap's root teardown, waiting.
t.test('the queue and the worker let go of Redis', async (t) => {
  await queue.close();
  t.same(await worker.close(1000), { running: 0, handedBack: 0 });
  redis.kill('SIGKILL');
});

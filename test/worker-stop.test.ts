/** `anvil worker` stopping: with Redis unreachable it says so and exits; on
 * SIGTERM it takes no new job, lets the running one finish within its lease,
 * and exits. Real processes and Debian's redis-server on a loopback port. */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import { FAST } from './helpers.js';
import { GOOD_VECTOR_ADD, Wire } from './wire.js';

const CLI = path.join(PACKAGE_ROOT, 'dist', 'scripts', 'anvil.js');
const children: ChildProcess[] = [];
t.teardown(() => children.forEach((c) => c.kill('SIGKILL')));

interface Proc {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function run(args: string[], cmd = process.execPath): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, out: () => out, exited: new Promise((r) => child.once('exit', (code) => r(code))) };
}

async function waitFor(p: Proc, re: RegExp, ms = 60_000): Promise<string> {
  const end = Date.now() + ms;
  while (!re.test(p.out())) {
    if (Date.now() > end) throw new Error(`no ${re} in: ${p.out()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return re.exec(p.out())![0];
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

t.test('with Redis unreachable the worker says so and exits', async (t) => {
  const port = await freePort();
  const w = run([CLI, 'worker', '--redis', `redis://127.0.0.1:${port}`, '--connect-timeout-ms', '1500']);
  const code = await w.exited;
  t.equal(code, 1);
  t.match(
    w.out(),
    new RegExp(
      `error \\[queue_unreachable\\]: cannot reach Redis at redis://127.0.0.1:${port} within 1500 ms \\(.*ECONNREFUSED`,
    ),
  );
});

t.test('SIGTERM while Redis is unreachable: the worker exits promptly', async (t) => {
  const port = await freePort();
  const w = run([CLI, 'worker', '--redis', `redis://127.0.0.1:${port}`, '--connect-timeout-ms', '120000']);
  await new Promise((r) => setTimeout(r, 2500));
  const t0 = Date.now();
  w.child.kill('SIGTERM');
  t.equal(await w.exited, 0);
  t.ok(Date.now() - t0 < 5000, `exited ${Date.now() - t0} ms after SIGTERM`);
  t.match(w.out(), /SIGTERM: taking no new job/);
});

t.test('SIGTERM during a job: the job finishes within the lease, is answered, and the worker exits', async (t) => {
  const redisPort = await freePort();
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const redis = run(
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    'redis-server',
  );
  await waitFor(redis, /Ready to accept connections/);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-wstop-'));
  const config = path.join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ eval: FAST, poolSize: 2 }));
  const worker = run([CLI, 'worker', '--redis', redisUrl, '--concurrency', '1', '--lock-ms', '20000']);
  await waitFor(worker, /anvil worker \S+: backend c/);
  const server = run([
    CLI,
    'serve',
    '--port',
    '0',
    '--redis',
    redisUrl,
    '--config',
    config,
    '--log-dir',
    path.join(dir, 'logs'),
  ]);
  const url = /(ws:\/\/\S+\/v1\/ws)/.exec(await waitFor(server, /anvil serving .*\/v1\/ws/))![1]!;
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  await w.call({ id: 1, op: 'hello', protocol: 1 });
  const ep = (await w.call({ id: 2, op: 'reset', task: 'vector_add' })).episodes[0].episode;
  w.send({ id: 3, op: 'step', episode: ep, action: GOOD_VECTOR_ADD });
  // SIGTERM once the worker holds the job (the queue's state, as /healthz shows it).
  const http = url.replace('ws://', 'http://').replace('/v1/ws', '');
  const active = async () => {
    const h = await (await fetch(`${http}/healthz`)).json();
    return Number(/(\d+) active/.exec(h.workers.find((x: { id: string }) => x.id === 'queue')?.state ?? '')?.[1] ?? 0);
  };
  for (let i = 0; i < 600 && (await active()) === 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(await active(), 1, 'the job runs on the worker');
  worker.child.kill('SIGTERM');
  const result = await w.next((f) => f.id === 3 && f.event === 'result', 60_000);
  t.equal(result.info.outcome, 'ok', 'the running job finished and was answered');
  t.equal(await worker.exited, 0);
  t.match(worker.out(), /stopped \(1 jobs finished, 0 handed back/);
});

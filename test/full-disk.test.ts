/** A full log disk, for real: a small tmpfs mounted for the test and filled.
 * The server keeps running, the step that could not be logged is answered with
 * a typed error and not counted, new steps are refused while the disk is full,
 * /healthz and /metrics say so, and steps resume by themselves once there is
 * space; every answered step is in the log. Needs root (mount), as CI runs. */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, Wire } from './wire.js';

function logRecords(dir: string): Array<Record<string, any>> {
  const out = [];
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.jsonl')))
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) if (line) out.push(JSON.parse(line));
  return out;
}

/** Fills the filesystem to the last byte. */
function fill(dir: string): void {
  const chunk = Buffer.alloc(64 * 1024, 120);
  for (let i = 0; ; i++) {
    try {
      writeFileSync(path.join(dir, `filler-${i}`), chunk);
    } catch {
      break;
    }
  }
  for (let i = 0; ; i++) {
    try {
      writeFileSync(path.join(dir, `small-${i}`), chunk.subarray(0, 512));
    } catch {
      break;
    }
  }
}

t.test('a full log disk: refuse, report, resume by itself; nothing answered is missing from the log', async (t) => {
  t.equal(process.getuid?.(), 0, 'this test mounts a tmpfs: it runs as root');
  const mnt = mkdtempSync(path.join(os.tmpdir(), 'anvil-fulldisk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
  t.teardown(() => {
    execFileSync('umount', ['-l', mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });
  const logDir = path.join(mnt, 'logs');
  const { server, url } = await startServer({ logDir, logProbeMs: 100, logFsync: 'step' });
  t.teardown(() => server.close());
  const base = url.replace('ws://', 'http://').replace('/v1/ws', '');
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  await w.call({ id: 'h', op: 'hello', protocol: 1 });
  const eps = (await w.call({ id: 'r', op: 'reset', task: 'vector_add', group: { size: 8 } })).episodes.map(
    (e: any) => e.episode,
  );
  const results: string[] = [];
  const step = async (id: string, ep: string) => {
    const r = await w.call({ id, op: 'step', episode: ep, action: `no code (${id}) ${'x'.repeat(2000)}` });
    if (r.event === 'result') results.push(id);
    return r;
  };
  t.equal((await step('a', eps[0])).event, 'result');

  fill(mnt);
  const failed = await step('b', eps[1]);
  t.equal(failed.ok, false, 'the step that could not be logged gets an error, not a result');
  t.equal(failed.error.code, 'storage_full');
  t.equal(failed.error.retryable, true);
  t.equal((await w.call({ id: 's1', op: 'state', episode: eps[1] })).turns.length, 0, 'and it was not counted');
  const refused = await step('c', eps[2]);
  t.equal(refused.error.code, 'storage_full', 'new steps are refused while the disk is full');
  t.match(refused.error.message, /resume by themselves/);
  const health = await (await fetch(`${base}/healthz`)).json();
  t.equal(health.ok, true, 'the server is alive');
  t.equal(health.log.writable, false);
  t.equal(health.log.error, 'ENOSPC');
  t.match(await (await fetch(`${base}/metrics`)).text(), /anvil_log_writable 0/);
  t.equal((await w.call({ id: 'p', op: 'ping' })).pong, true, 'everything else is served');

  for (const f of readdirSync(mnt)) if (f.startsWith('filler-')) rmSync(path.join(mnt, f));
  const end = Date.now() + 10_000;
  while (server.log.full && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  t.equal(server.log.full, false, 'the log takes records again by itself');
  t.equal((await step('b2', eps[1])).event, 'result', 'the refused step, sent again, is answered');
  t.equal((await step('c2', eps[2])).event, 'result');
  t.match(await (await fetch(`${base}/metrics`)).text(), /anvil_log_writable 1/);

  const records = logRecords(logDir);
  t.equal(records.length, results.length, 'every answered step is in the log, and only those');
  t.same(
    records.map((r) => /\((\w+)\)/.exec(r.action)![1]).sort(),
    [...results].sort(),
    'the answered steps are the logged ones',
  );
});

t.test('a server started on a full disk runs and refuses steps until there is space', async (t) => {
  const mnt = mkdtempSync(path.join(os.tmpdir(), 'anvil-fulldisk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
  t.teardown(() => {
    execFileSync('umount', ['-l', mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });
  fill(mnt);
  const { server, url } = await startServer({ logDir: path.join(mnt, 'logs'), logProbeMs: 100 });
  t.teardown(() => server.close());
  const w = await Wire.open(url);
  t.teardown(() => w.close());
  await w.call({ id: 'h', op: 'hello', protocol: 1 });
  const ep = (await w.call({ id: 'r', op: 'reset', task: 'vector_add' })).episodes[0].episode;
  t.equal((await w.call({ id: 1, op: 'step', episode: ep, action: 'no code' })).error.code, 'storage_full');
  t.equal((await w.call({ id: 2, op: 'ping' })).pong, true, 'still serving');
});

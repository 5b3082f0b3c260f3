/** What each fsync policy of the turn log costs: the time of one append (a
 * typical 3 KiB record) with none, batched (every 1 s) and per-step fdatasync,
 * side by side in one run, on the folder given (default: a fresh one in the
 * OS temporary folder, which should be on a real disk, not tmpfs).
 *   node dist/bench/server-log-fsync.js [--dir DIR] [--records N] */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { TurnRecord } from '../contracts/record.js';
import { TurnLog, type FsyncPolicy } from '../env/log.js';

const { values } = parseArgs({ options: { dir: { type: 'string' }, records: { type: 'string', default: '5000' } } });
const N = Number(values.records);
const root = mkdtempSync(path.join(values.dir ?? os.tmpdir(), 'anvil-fsync-'));
// A turn record as the server writes one (the log checks each against the schema).
const record: TurnRecord = {
  run: 'bench',
  time: new Date().toISOString(),
  serverVersion: '0',
  session: 's',
  episode: 'e',
  group: 'g',
  index: 0,
  taskset: 'ts',
  task: 't',
  taskVersion: 1,
  taskDigest: 'd',
  seed: 1,
  turn: 0,
  observation: { messages: [{ role: 'user', content: 'p' }] },
  action: 'x'.repeat(2000),
  feedback: 'y'.repeat(800),
  meta: null,
  completionIds: null,
  logprobs: null,
  policyVersion: null,
  eval: {
    outcome: 'ok',
    correct: true,
    speedup: 1,
    profileShare: 1,
    flags: [],
    message: 'm',
    cached: false,
    codeHash: 'h',
    sandbox: 'bwrap',
    stages: ['extract', 'compile', 'timing'].map((name) => ({ name, status: 'ok' as const, ms: 1 })),
  },
  reward: 1,
  components: { correct: 0.5 },
  rewardConfig: {
    formula: 'drkernel',
    wCorrect: 0.5,
    wSpeed: 0.5,
    wProfile: 0.5,
    speedCap: 3,
    failureReward: 0,
    hackReward: 0,
  },
  terminated: false,
  truncated: false,
  reason: null,
  mask: false,
  timings: { queuedMs: 0, totalMs: 1, stages: {} },
};

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const rows: string[] = [];
for (const policy of ['none', 'batch', 'step'] as FsyncPolicy[]) {
  const log = new TurnLog(path.join(root, policy), { rotateBytes: 64 * 1024 ** 2, fsync: policy, fsyncBatchMs: 1000 });
  const times: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const a = performance.now();
    log.append({ ...record, turn: i });
    times.push(performance.now() - a);
    // Spread the appends over time as a server does, so the batched sync runs in between.
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 5));
  }
  const wall = performance.now() - t0;
  log.close();
  times.sort((a, b) => a - b);
  rows.push(
    `| ${policy} | ${((times.reduce((a, b) => a + b, 0) / N) * 1000).toFixed(0)} | ${(pct(times, 0.5) * 1000).toFixed(0)} | ${(pct(times, 0.99) * 1000).toFixed(0)} | ${(pct(times, 1) * 1000).toFixed(0)} | ${(N / (wall / 1000)).toFixed(0)} |`,
  );
}
rmSync(root, { recursive: true, force: true });
console.log(
  `${N} appends of a ${JSON.stringify(record).length}-byte record per policy, ${os.cpus()[0]?.model}, on ${values.dir ?? os.tmpdir()}`,
);
console.log('| fsync | mean µs | p50 µs | p99 µs | max µs | appends/s (with 5 ms pauses every 100) |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) console.log(r);

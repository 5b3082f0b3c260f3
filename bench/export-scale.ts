/** Benchmark of `anvil export` and `anvil report` on a large synthetic run (not
 * a test): N turn records in groups of 8 episodes of 3 turns, written as the
 * server writes them, then exported to JSON Lines and Parquet and reported.
 *
 *   node dist/bench/export-scale.js [--turns 100000] [--out docs/benchmarks/export.md]
 */
import { mkdtempSync, openSync, statSync, writeSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { exportDataset } from '../rewards/export.js';
import { writeReport } from '../rewards/report.js';
import { writeFileSync } from 'node:fs';

const { values } = parseArgs({ options: { turns: { type: 'string', default: '100000' }, out: { type: 'string', default: 'docs/benchmarks/export.md' } } });
const N = Number(values.turns);
const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-bench-logs-'));
const fd = openSync(path.join(dir, 'turns-bench-0001.jsonl'), 'w');
const code = '```c\nvoid solve(const float *a, const float *b, float *out, int n) {\n  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];\n}\n```';
for (let i = 0; i < N; i++) {
  const turn = i % 3;
  const record = {
    run: 'bench',
    time: new Date(1.8e12 + i * 100).toISOString(),
    episode: `e${Math.floor(i / 3)}`,
    group: `g${Math.floor(i / 24)}`,
    index: Math.floor(i / 3) % 8,
    taskset: 'builtin-c',
    task: `task${i % 14}`,
    taskVersion: 1,
    turn,
    observation: { messages: turn === 0 ? [{ role: 'system', content: 'system prompt '.repeat(20) }, { role: 'user', content: 'task prompt '.repeat(80) }] : [{ role: 'user', content: 'feedback '.repeat(30) }] },
    action: code,
    feedback: 'feedback '.repeat(30),
    meta: { tokens: turn },
    eval: { outcome: i % 5 ? 'ok' : 'wrong_result', correct: i % 5 !== 0, speedup: i % 5 ? 1 + (i % 7) : null, profileShare: 1, flags: [], message: '', stages: [{ name: 'compile', status: 'ok', ms: 100 + (i % 300) }], cached: false, codeHash: 'x' },
    reward: i % 5 ? 1 + (i % 7) / 7 : 0,
    components: { correct: 0.5 },
    terminated: false,
    truncated: turn === 2,
    reason: turn === 2 ? 'max_turns' : null,
    mask: i % 97 === 0,
    timings: {},
  };
  writeSync(fd, `${JSON.stringify(record)}\n`);
}
closeSync(fd);
const size = statSync(path.join(dir, 'turns-bench-0001.jsonl')).size;
const time = async (f: () => Promise<unknown>) => {
  const t0 = performance.now();
  await f();
  return (performance.now() - t0) / 1000;
};
const base = { logs: dir, gamma: 1, prsTau: 0.3, prsF: 0.1, filters: [], episodes: false };
const jsonl = await time(() => exportDataset({ ...base, out: path.join(dir, 'x.jsonl'), format: 'jsonl' }));
const parquet = await time(() => exportDataset({ ...base, out: path.join(dir, 'x.parquet'), format: 'parquet' }));
const report = await time(() => writeReport({ logs: dir, out: path.join(dir, 'r.html') }));
const lines = [
  '# Export and report benchmark',
  '',
  `Host: ${os.cpus()[0]?.model}, ${os.availableParallelism()} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}. A synthetic run of ${N} turn records (${(size / 1024 ** 2).toFixed(0)} MiB of logs; groups of 8 episodes of 3 turns; 1% masked).`,
  '',
  '| command | seconds | turns/s |',
  '|---|---|---|',
  `| anvil export → JSON Lines | ${jsonl.toFixed(2)} | ${(N / jsonl).toFixed(0)} |`,
  `| anvil export → Parquet | ${parquet.toFixed(2)} | ${(N / parquet).toFixed(0)} |`,
  `| anvil report | ${report.toFixed(2)} | ${(N / report).toFixed(0)} |`,
  '',
  `Both read the whole run into memory (not streamed): this process peaked at ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB resident over the three.`,
];
writeFileSync(values.out!, `${lines.join('\n')}\n`);
console.log(lines.join('\n'));

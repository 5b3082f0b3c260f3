/** Benchmark of `anvil export` and `anvil report` on a large synthetic run (not
 * a test): N turn records in groups of 8 episodes of 3 turns, written as the
 * server writes them (interleaved, in 64 MiB files), then exported to JSON
 * Lines and to Parquet and reported, each by the CLI in its own process, whose
 * peak resident memory is read from the kernel (/usr/bin/time's source, wait4).
 *
 *   node dist/bench/export-scale.js [--turns 1000000] [--dir /tmp] [--out docs/benchmarks/export.md]
 *
 * The logs (over 1 GB at a million turns) and the outputs go to a fresh folder
 * under --dir, removed at the end. */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { TurnRecord } from '../contracts/record.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';

const { values } = parseArgs({
  options: {
    turns: { type: 'string', default: '1000000' },
    dir: { type: 'string', default: os.tmpdir() },
    out: { type: 'string', default: 'docs/benchmarks/export.md' },
  },
});
const N = Number(values.turns);
const dir = mkdtempSync(path.join(values.dir!, 'anvil-bench-export-'));
const logs = path.join(dir, 'logs');
const CLI = path.join(PACKAGE_ROOT, 'dist', 'scripts', 'anvil.js');

try {
  // The server interleaves a group's episodes and turns over time; so does this.
  const code =
    '```c\nvoid solve(const float *a, const float *b, float *out, int n) {\n  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];\n}\n```';
  spawnSync('mkdir', ['-p', logs]);
  let part = 0;
  let fd = -1;
  let bytes = 0;
  let buf: string[] = [];
  const open = () => {
    if (fd >= 0) closeSync(fd);
    fd = openSync(path.join(logs, `turns-bench-${String(++part).padStart(4, '0')}.jsonl`), 'w');
    bytes = 0;
  };
  open();
  const groups = Math.ceil(N / 24);
  const BLOCK = 500; // groups stepped side by side
  let written = 0;
  for (let g0 = 0; g0 < groups && written < N; g0 += BLOCK)
    for (let turn = 0; turn < 3; turn++)
      for (let g = g0; g < Math.min(groups, g0 + BLOCK); g++)
        for (let e = 0; e < 8 && written < N; e++) {
          const i = written++;
          const ep = g * 8 + e;
          // A whole turn record, as the server writes one (the readers parse every line with its schema).
          const record: TurnRecord = {
            run: 'bench',
            time: new Date(1.8e12 + i * 100).toISOString(),
            serverVersion: '0.1.0',
            session: `s${g % 16}`,
            episode: `e${ep}`,
            group: `g${g}`,
            index: e,
            taskset: 'builtin-c',
            task: `task${g % 14}`,
            taskVersion: 1,
            taskDigest: 'digest',
            seed: g,
            turn,
            observation: {
              messages:
                turn === 0
                  ? [
                      { role: 'system', content: 'system prompt '.repeat(20) },
                      { role: 'user', content: 'task prompt '.repeat(80) },
                    ]
                  : [{ role: 'user', content: 'feedback '.repeat(30) }],
            },
            action: code,
            feedback: 'feedback '.repeat(30),
            meta: { tokens: turn },
            completionIds: null,
            logprobs: null,
            policyVersion: null,
            eval: {
              outcome: i % 5 ? 'ok' : 'wrong_result',
              correct: i % 5 !== 0,
              speedup: i % 5 ? 1 + (i % 7) : null,
              profileShare: 1,
              flags: [],
              message: '',
              stages: [{ name: 'compile', status: 'ok', ms: 100 + (i % 300) }],
              cached: false,
              codeHash: 'x',
              sandbox: 'bwrap',
            },
            reward: i % 5 ? 1 + (i % 7) / 7 : 0,
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
            truncated: turn === 2,
            reason: turn === 2 ? 'max_turns' : null,
            mask: i % 97 === 0,
            timings: { queuedMs: 0, totalMs: 100 + (i % 300), stages: { compile: 100 + (i % 300) } },
          };
          const line = `${JSON.stringify(record)}\n`;
          buf.push(line);
          bytes += line.length;
          if (buf.length >= 2000) {
            writeSync(fd, buf.join(''));
            buf = [];
            if (bytes > 64 * 1024 ** 2) open();
          }
        }
  writeSync(fd, buf.join(''));
  closeSync(fd);
  const size = readdirSync(logs).reduce((a, f) => a + statSync(path.join(logs, f)).size, 0);

  /** One CLI command in its own process: wall time and the kernel's peak RSS of that process. */
  const measure = (args: string[]) => {
    const t0 = performance.now();
    // `command time -f` is not on a base image; bash's wait gives no RSS. Node reports its own
    // peak through process.resourceUsage, printed by a tiny wrapper after the CLI finishes.
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `process.argv.splice(1, 0, ${JSON.stringify(CLI)}); await import(${JSON.stringify(CLI)}); process.on('exit', () => console.error('MAXRSS ' + process.resourceUsage().maxRSS));`,
        ...args,
      ],
      { encoding: 'utf8', maxBuffer: 64 * 1024 ** 2 },
    );
    const seconds = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`anvil ${args.join(' ')} failed: ${r.stderr}`);
    const rss = Number(/MAXRSS (\d+)/.exec(r.stderr)?.[1] ?? NaN) / 1024;
    return { seconds, rssMiB: rss, said: r.stdout.trim() };
  };
  const out = (f: string) => path.join(dir, f);
  const jsonl = measure(['export', '--logs', logs, '--out', out('x.jsonl')]);
  const jsonlSize = statSync(out('x.jsonl')).size;
  rmSync(out('x.jsonl'));
  const parquet = measure(['export', '--logs', logs, '--out', out('x.parquet')]);
  const parquetSize = statSync(out('x.parquet')).size;
  rmSync(out('x.parquet'));
  const report = measure(['report', '--logs', logs, '--out', out('r.html')]);
  const lines = [
    '# Export and report benchmark',
    '',
    `Host: ${os.cpus()[0]?.model}, ${os.availableParallelism()} cores, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}; the machine was shared with other work while this ran. A synthetic run of ${N.toLocaleString('en')} turn records: ${(size / 1024 ** 3).toFixed(2)} GiB of logs in ${part} files, groups of 8 episodes of 3 turns, 500 groups stepped side by side, 1% masked.`,
    "Each command ran as `anvil …` in its own process; peak RSS is that process's, from the kernel.",
    '',
    '| command | seconds | turns/s | peak RSS MiB | output |',
    '|---|---|---|---|---|',
    `| anvil export → JSON Lines | ${jsonl.seconds.toFixed(1)} | ${(N / jsonl.seconds).toFixed(0)} | ${jsonl.rssMiB.toFixed(0)} | ${(jsonlSize / 1024 ** 3).toFixed(2)} GiB |`,
    `| anvil export → Parquet | ${parquet.seconds.toFixed(1)} | ${(N / parquet.seconds).toFixed(0)} | ${parquet.rssMiB.toFixed(0)} | ${(parquetSize / 1024 ** 2).toFixed(0)} MiB |`,
    `| anvil report | ${report.seconds.toFixed(1)} | ${(N / report.seconds).toFixed(0)} | ${report.rssMiB.toFixed(0)} | ${(statSync(out('r.html')).size / 1024).toFixed(0)} KiB |`,
    '',
    'Export streams: the logs are split by group into on-disk partitions of 32 MiB, each is sorted',
    'and turned into rows alone, and the sorted partitions are merged into the output, so memory is',
    'bounded by one partition and one Parquet row group (8,192 rows). The report streams its',
    'statistics and keeps only the episodes it shows.',
  ];
  writeFileSync(values.out!, `${lines.join('\n')}\n`);
  console.log(lines.join('\n'));
} finally {
  rmSync(dir, { recursive: true, force: true });
}

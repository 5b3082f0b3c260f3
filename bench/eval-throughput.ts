/** Benchmark of C evaluation (not a test): evaluations per second by pool size,
 * the sandbox's start-up cost, the cost of isolation on a whole evaluation, and
 * the spread of the measured speedup over repeated evaluations. All in one run,
 * side by side, because these machines are shared and noisy.
 *
 *   node dist/bench/eval-throughput.js [--out docs/benchmarks/c-eval.md] [--quick] [--pools 1,2,16] [--card NAME] [--spread-only] [--threads N]
 */
import { mkdtempSync, chmodSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { JobCgroup } from '../sandbox/cgroup.js';
import { localService } from '../sandbox/service.js';
import { launchArgv, type SandboxMode } from '../sandbox/isolation.js';
import { runCapped } from '../sandbox/process.js';
import { ensureToolchain } from '../sandbox/toolchain.js';
import { loadTaskSet, solutionFiles, type Task } from '../tasks/loader.js';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'docs/benchmarks/c-eval.md' },
    quick: { type: 'boolean', default: false },
    pools: { type: 'string' },
    card: { type: 'string' },
    'spread-only': { type: 'boolean', default: false },
    threads: { type: 'string' },
  },
});
const quick = values.quick!;
const set = loadTaskSet('builtin-c');
const solution = (t: Task) => readFileSync(solutionFiles(t)[0]!, 'utf8');
const log = (s: string) => process.stderr.write(`${s}\n`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const lines: string[] = [];
const say = (s = '') => {
  lines.push(s);
  console.log(s);
};

// 1. Sandbox start-up: /bin/true through the whole launch path, against running it directly.
async function startup(): Promise<{ sandboxed: number; direct: number }> {
  const tc = ensureToolchain();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-bench-'));
  chmodSync(dir, 0o755);
  const argvFor = (mode: SandboxMode, cg: JobCgroup | null) =>
    launchArgv({
      toolchain: tc,
      mode,
      cgroup: cg,
      uid: null,
      limits: { cpuSeconds: 10, fileBytes: 1 << 20, addressBytes: 8 * 1024 ** 3, nproc: 64, nofile: 64 },
      env: { PATH: '/usr/bin' },
      binds: [{ src: dir, dest: '/job' }],
      chdir: '/job',
      command: ['/bin/true'],
    });
  const n = quick ? 10 : 40;
  const sandboxed: number[] = [];
  const direct: number[] = [];
  for (let i = 0; i < n; i++) {
    const cg = JobCgroup.create(`bench-${process.pid}-${i}`, { memoryBytes: 256 * 1024 ** 2, pids: 64 });
    const t0 = performance.now();
    await runCapped(argvFor('bwrap', cg), { timeoutMs: 10_000 });
    sandboxed.push(performance.now() - t0);
    await cg?.destroy();
    const t1 = performance.now();
    await runCapped(['/bin/true'], { timeoutMs: 10_000 });
    direct.push(performance.now() - t1);
  }
  return { sandboxed: median(sandboxed), direct: median(direct) };
}

// 2. Isolation overhead: the same evaluation, sandboxed and not, interleaved.
async function isolationOverhead(task: Task): Promise<{ bwrap: number; none: number; ratio: number }> {
  const code = solution(task);
  const boxed = localService('c', { poolSize: 1, cacheSize: 0 });
  process.env.ANVIL_BWRAP = '/nonexistent';
  const open = localService('c', { poolSize: 1, cacheSize: 0, allowUnsandboxed: true });
  delete process.env.ANVIL_BWRAP;
  const times: Record<'bwrap' | 'none', number[]> = { bwrap: [], none: [] };
  const n = quick ? 2 : 5;
  for (let i = 0; i < n; i++) {
    for (const [name, ev] of [
      ['bwrap', boxed],
      ['none', open],
    ] as const) {
      const t0 = performance.now();
      const r = await ev.evaluate({ task, code, seed: i });
      if (r.outcome !== 'ok') throw new Error(`${name}: ${r.outcome} ${r.message}`);
      times[name].push(performance.now() - t0);
    }
  }
  await boxed.close();
  await open.close();
  const b = median(times.bwrap);
  const o = median(times.none);
  return { bwrap: b, none: o, ratio: b / o };
}

// 3. Throughput by pool size on a mix of tasks.
async function throughput(poolSize: number, mix: Task[]): Promise<number> {
  const ev = localService('c', { poolSize, cacheSize: 0 });
  for (const t of mix) ev.warm(t);
  const t0 = performance.now();
  const results = await Promise.all(mix.map((t, i) => ev.evaluate({ task: t, code: solution(t), seed: i })));
  const s = (performance.now() - t0) / 1000;
  await ev.close();
  const bad = results.filter((r) => r.outcome !== 'ok');
  if (bad.length) throw new Error(`throughput run: ${bad.map((r) => `${r.task.id} ${r.outcome}`).join(', ')}`);
  return mix.length / s;
}

// 4. Speedup spread over repeated evaluations of one candidate.
async function spread(task: Task, n: number): Promise<{ speedups: number[]; candidateMs: number; ratio: number }> {
  const ev = localService('c', {
    poolSize: 1,
    cacheSize: 0,
    eval: values.threads ? { threads: Number(values.threads) } : {},
  });
  const speedups: number[] = [];
  let candidateMs = 0;
  for (let i = 0; i < n; i++) {
    const r = await ev.evaluate({ task, code: solution(task), seed: 100 + i });
    if (r.outcome !== 'ok') throw new Error(`${task.id}: ${r.outcome} ${r.message}`);
    speedups.push(r.speedup!);
    candidateMs = r.timing!.candidateMs;
  }
  await ev.close();
  return { speedups, candidateMs, ratio: Math.max(...speedups) / Math.min(...speedups) };
}

const cores = os.availableParallelism();
say(`# C evaluation benchmark`);
say();
say(
  `Host: ${os.cpus()[0]?.model}, ${cores} cores, ${Math.round(os.totalmem() / 1024 ** 3)} GiB${values.card ? ` (the ${values.card} machine)` : ''}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.`,
);
say(`Default evaluation settings (timing budget 2 s per shape, 7 to 100 repetitions).`);
say();

if (!values['spread-only']) {
  log('sandbox start-up…');
  const st = await startup();
  say(`## Sandbox start-up`);
  say();
  say(`| what | median ms |`);
  say(`|---|---|`);
  say(`| /bin/true through anvil-launch + bubblewrap + cgroup | ${st.sandboxed.toFixed(1)} |`);
  say(`| /bin/true directly | ${st.direct.toFixed(1)} |`);
  say(`| **sandbox start-up cost** (target < 20 ms) | **${(st.sandboxed - st.direct).toFixed(1)}** |`);
  say();

  log('isolation overhead…');
  const iso = await isolationOverhead(set.tasks.get('vector_add')!);
  say(`## Isolation overhead on a whole evaluation (vector_add, median of interleaved runs)`);
  say();
  say(`| mode | median ms per evaluation |`);
  say(`|---|---|`);
  say(`| sandboxed (bwrap, cgroups, seccomp, rlimits) | ${iso.bwrap.toFixed(0)} |`);
  say(`| same harness, unsandboxed | ${iso.none.toFixed(0)} |`);
  say(`| **overhead** (target < 10%) | **${((iso.ratio - 1) * 100).toFixed(1)}%** |`);
  say();

  const mixIds = ['vector_add', 'softmax_rows', 'sgemm', 'conv2d', 'layernorm_rows', 'matvec', 'gelu', 'sum_reduce'];
  const mix = mixIds.map((id) => set.tasks.get(id)!);
  say(`## Evaluations per second by pool size`);
  say();
  say(`Mix of ${mix.length} evaluations (${mixIds.join(', ')}), all submitted at once; timing phases never overlap.`);
  say();
  say(`| pool size | evaluations/s |`);
  say(`|---|---|`);
  const pools = values.pools ? values.pools.split(',').map(Number) : Array.from({ length: cores }, (_, i) => i + 1);
  for (const p of pools) {
    log(`throughput, pool ${p}…`);
    say(`| ${p} | ${(await throughput(p, mix)).toFixed(2)} |`);
  }
  say();
}
say(
  `## Speedup spread over 5 evaluations of the same candidate (fresh seeds${values.threads ? `; ${values.threads} OpenMP thread${values.threads === '1' ? '' : 's'}` : ''})`,
);
say();
say(`| task | candidate median ms | speedups | max/min (target < 1.05 for kernels ≥ 1 ms) |`);
say(`|---|---|---|---|`);
for (const id of quick
  ? ['vector_add']
  : ['vector_add', 'matvec', 'prefix_sum', 'transpose', 'softmax_rows', 'sgemm']) {
  log(`spread ${id}…`);
  const s = await spread(set.tasks.get(id)!, quick ? 2 : 5);
  say(
    `| ${id} | ${s.candidateMs.toFixed(3)} | ${s.speedups.map((x) => x.toFixed(2)).join(', ')} | ${s.ratio.toFixed(3)} |`,
  );
}
say();
writeFileSync(values.out!, `${lines.join('\n')}\n`);
log(`written to ${values.out}`);

/** Fidelity of the C backend's speedup (a benchmark, not a test): every
 * task's committed solution is evaluated `rounds` times, round-robin across the
 * tasks, so that each evaluation of one task is interleaved with evaluations of
 * the others, with every check on and the default measurement settings. The
 * cache is off, so each evaluation really runs. Reported per task: the spread
 * max/min of the speedup over the rounds (the target is ≤ 1.10 for kernels of
 * at least 1 ms), with the reported speedup (the median of paired ratios) and,
 * side by side from the same runs, two other estimators: the ratio of the
 * reference's and the candidate's 10th percentiles, and of their minima.
 *
 * With --reference the candidate is the task's own reference source: what
 * resubmitting the reference earns (it should be 1×). With --compare-realtime
 * every evaluation is made twice, timed under SCHED_FIFO and not, side by side.
 * With --bare every evaluation is followed by the same candidate timed in a
 * plain process beside the reference (bench/c-bare.ts): the machine's own
 * spread, with no judge, side by side with the judge's.
 *
 *   node dist/bench/c-fidelity.js [--rounds 8] [--tasks a,b] [--reference] [--bare] [--out docs/benchmarks/c-fidelity.md]
 */
import os from 'node:os';
import path from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { localService } from '../sandbox/service.js';
import { cTask, loadTaskSet, solutionFiles, type Task } from '../tasks/loader.js';
import { bareHarness } from './c-bare.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '8' },
    tasks: { type: 'string' },
    out: { type: 'string' },
    reference: { type: 'boolean', default: false },
    'compare-realtime': { type: 'boolean', default: false },
    bare: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const set = loadTaskSet('builtin-c');
const tasks: Task[] = [...set.tasks.values()].filter((t) => !values.tasks || values.tasks.split(',').includes(t.id));
const variants = values['compare-realtime']
  ? [
      { name: 'realtime', ev: localService('c', { cacheSize: 0 }) },
      { name: 'ordinary', ev: localService('c', { cacheSize: 0, realtimeTiming: false }) },
    ]
  : [{ name: '', ev: localService('c', { cacheSize: 0 }) }];
const log = (s: string) => process.stderr.write(`${s}\n`);
const lines: string[] = [];
const say = (s = '') => {
  lines.push(s);
  console.log(s);
};

interface Sample {
  paired: number;
  p10: number;
  min: number;
  ci: [number, number];
  candMs: number;
  reps: number;
}
const rowName = (task: Task, v: { name: string }) => (v.name ? `${task.id} (${v.name})` : task.id);
const samples = new Map<string, Sample[]>(
  tasks.flatMap((t) => variants.map((v) => [rowName(t, v), []] as [string, Sample[]])),
);
const candidateFile = (task: Task) =>
  values.reference ? path.join(cTask(task).dir, 'reference.c') : solutionFiles(task)[0]!;
const bare = new Map(values.bare ? tasks.map((t) => [t.id, bareHarness(cTask(t), candidateFile(t))]) : []);
const bareSamples = new Map<string, number[]>(tasks.map((t) => [t.id, []]));
const t0 = performance.now();
for (let round = 0; round < rounds; round++) {
  for (const task of tasks) {
    const runBare = bare.get(task.id);
    if (runBare) {
      const x = runBare();
      bareSamples.get(task.id)!.push(x);
      log(`${task.id} (bare) round ${round}: ${x.toFixed(3)}×`);
    }
    for (const v of variants) {
      const code = readFileSync(candidateFile(task), 'utf8');
      const r = await v.ev.evaluate({ task, code, seed: 1 });
      if (r.outcome !== 'ok' || !r.timing) {
        log(`${task.id} round ${round}: ${r.outcome} ${r.message}`);
        continue;
      }
      const shapes = r.timing.shapes;
      const g = (f: (s: (typeof shapes)[number]) => number) =>
        Math.exp(shapes.reduce((a, s) => a + Math.log(f(s)), 0) / shapes.length);
      samples.get(rowName(task, v))!.push({
        paired: r.speedup!,
        p10: g((s) => s.reference.p10Ms / s.candidate.p10Ms),
        min: g((s) => s.reference.minMs / s.candidate.minMs),
        ci: r.speedupCi ?? [NaN, NaN],
        candMs: r.timing.candidateMs,
        reps: Math.min(...r.timing.shapes.map((s) => s.candidate.reps)),
      });
      log(
        `${rowName(task, v)} round ${round}: ${r.speedup!.toFixed(3)}× (CI ${r.speedupCi?.map((x) => x.toFixed(2)).join('–')})`,
      );
    }
  }
}
for (const v of variants) await v.ev.close();

const spread = (xs: number[]) => Math.max(...xs) / Math.min(...xs);
say(
  values.reference
    ? "# C speedup fidelity: the task's own reference resubmitted as the candidate"
    : '# C speedup fidelity: one committed solution, evaluated again and again',
);
say();
say(
  `Host: ${os.cpus()[0]?.model}, ${os.availableParallelism()} cores (shared with other work while this ran: figures are noisier than on an idle host).`,
);
say(
  `${rounds} rounds, round-robin over ${tasks.length} tasks (each evaluation of a task is interleaved with the others'), every check on, default settings, cache off; ${((performance.now() - t0) / 60000).toFixed(1)} min.`,
);
say();
say(
  '| task | candidate ms | reps (min) | speedup median of rounds | max/min: paired median (reported) | max/min: p10 ratio | max/min: min ratio | mean 95% CI width |',
);
say('|---|---|---|---|---|---|---|---|');
for (const [row, s] of samples) {
  if (s.length < 2) continue;
  const sorted = s.map((x) => x.paired).sort((a, b) => a - b);
  const ciWidth = s.reduce((a, x) => a + (x.ci[1] - x.ci[0]) / x.paired, 0) / s.length;
  const ms = s.reduce((a, x) => a + x.candMs, 0) / s.length;
  say(
    `| ${row} | ${ms.toFixed(2)} | ${Math.min(...s.map((x) => x.reps))} | ${sorted[Math.floor(sorted.length / 2)]!.toFixed(3)} | ${spread(s.map((x) => x.paired)).toFixed(3)} | ${spread(s.map((x) => x.p10)).toFixed(3)} | ${spread(s.map((x) => x.min)).toFixed(3)} | ${(100 * ciWidth).toFixed(1)}% |`,
  );
}
if (values.bare) {
  say();
  say(
    'The same candidates in a plain process beside the reference (no sandbox, no judge), one fresh process per round:',
  );
  say();
  say('| task | bare speedup median of rounds | max/min: bare | max/min: judge (reported) |');
  say('|---|---|---|---|');
  for (const task of tasks) {
    const b = bareSamples.get(task.id)!;
    const judged = samples.get(rowName(task, variants[0]!))!.map((x) => x.paired);
    if (b.length < 2) continue;
    const mid = [...b].sort((x, y) => x - y)[Math.floor(b.length / 2)]!;
    say(
      `| ${task.id} | ${mid.toFixed(3)} | ${spread(b).toFixed(3)} | ${judged.length > 1 ? spread(judged).toFixed(3) : '—'} |`,
    );
  }
}
if (values.out) writeFileSync(values.out, `${lines.join('\n')}\n`);

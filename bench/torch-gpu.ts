/** The torch backend verified on a GPU, in one run: every builtin-torch task with
 * its honest solutions, the whole torch hack corpus (with and without the static
 * checks), the spread of speedup over 5 evaluations of one candidate, evaluations
 * per GPU-hour with the warm fork against a fresh interpreter per job, and
 * KernelBench level-1 elementwise tasks at their own sizes.
 *
 *   node dist/bench/torch-gpu.js [--kernelbench PATH] [--out FILE.json]
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getTask, loadTaskSet, solutionFiles, type Task } from '../tasks/loader.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import type { EvalResult } from '../sandbox/result.js';
import { localService } from '../sandbox/service.js';

const { values } = parseArgs({
  options: {
    kernelbench: { type: 'string' },
    out: { type: 'string' },
    only: { type: 'string' },
    tasks: { type: 'string' },
    solutions: { type: 'string' },
  },
});
/** --tasks a,b and --solutions triton,cuda narrow the honest-solution table (a quick check on the device). */
const taskFilter = values.tasks ? new Set(values.tasks.split(',')) : null;
const solutionFilter = values.solutions ? new Set(values.solutions.split(',')) : null;
const parts = new Set((values.only ?? 'tasks,hacks,spread,fork,kernelbench').split(','));
const report: Record<string, unknown> = {};
const say = (s: string) => process.stdout.write(`${s}\n`);
const f = (x: number | null | undefined, d = 2) => (x == null ? '-' : x.toFixed(d));
const stageMs = (r: EvalResult) =>
  r.stages
    .filter((s) => s.status !== 'skipped')
    .map((s) => `${s.name[0]}${Math.round(s.ms)}`)
    .join(' ');

const set = loadTaskSet('builtin-torch');
const ev = localService('torch', { cacheSize: 0 });
await ev.start();
say(`device: ${ev.environment().device}; ${ev.environment().compiler}`);
report.environment = ev.environment();

if (parts.has('tasks')) {
  say('\n## builtin-torch: honest solutions');
  say('task               solution   verdict          speedup  ref ms   cand ms  share  stages (ms)');
  const rows = [];
  for (const task of set.tasks.values()) {
    if (taskFilter && !taskFilter.has(task.id)) continue;
    for (const file of solutionFiles(task).filter(
      (x) => !solutionFilter || solutionFilter.has(path.basename(x, '.py')),
    )) {
      const t0 = performance.now();
      const r = await ev.evaluate({ task, code: readFileSync(file, 'utf8'), seed: 1 });
      const name = path.basename(file, '.py');
      say(
        `${task.id.padEnd(18)} ${name.padEnd(10)} ${r.outcome.padEnd(16)} ${f(r.speedup).padStart(7)}  ${f(r.timing?.referenceMs, 3).padStart(7)}  ${f(r.timing?.candidateMs, 3).padStart(7)}  ${f(r.profileShare).padStart(5)}  ${stageMs(r)}${r.outcome === 'ok' ? '' : `  ${r.message.slice(0, 300)}`}`,
      );
      rows.push({
        task: task.id,
        solution: name,
        outcome: r.outcome,
        flags: r.flags,
        speedup: r.speedup,
        splitMs: r.timing?.shapes[0]?.splitMs,
        referenceMs: r.timing?.referenceMs,
        candidateMs: r.timing?.candidateMs,
        share: r.profileShare,
        stages: r.stages.map((s) => [s.name, s.status, Math.round(s.ms)]),
        wallMs: performance.now() - t0,
        message: r.message.slice(0, 2000),
      });
    }
  }
  report.tasks = rows;
}

if (parts.has('hacks')) {
  say('\n## torch hack corpus (with static checks | runtime checks alone)');
  const unchecked = localService('torch', { cacheSize: 0, unsafeSkipStaticChecks: true });
  await unchecked.start();
  const rows = [];
  // The GPU corpus and the judge corpus (device-agnostic candidates written for the CPU tests).
  const files = ['torch-hacks', 'torch-hacks-cpu'].flatMap((d) =>
    readdirSync(path.join(PACKAGE_ROOT, 'test', d))
      .filter((x) => x.endsWith('.py'))
      .sort()
      .map((x) => path.join(PACKAGE_ROOT, 'test', d, x)),
  );
  for (const full of files) {
    const file = path.basename(full);
    const code = readFileSync(full, 'utf8');
    const header = (k: string) => code.match(new RegExp(`^# ${k}: (.+)$`, 'm'))?.[1]?.trim() ?? '';
    const task = getTask(set, header('task'));
    const cfg = { correctnessDeadlineMs: 20_000 };
    const verdicts = [];
    for (const [which, e, expect] of [
      ['checked', ev, header('expect')],
      ['runtime', unchecked, header('unchecked')],
    ] as const) {
      const r = await e.evaluate({ task, code, seed: 2, config: cfg });
      const caught =
        expect === 'not_ok'
          ? r.outcome !== 'ok'
          : expect.includes('/')
            ? r.outcome === expect.split('/')[0] && r.flags.some((fl) => fl.kind === expect.split('/')[1])
            : r.outcome === expect;
      verdicts.push({
        which,
        outcome: r.outcome,
        flags: r.flags.map((fl) => fl.kind),
        expect,
        caught,
        message: r.message.slice(0, 300),
        stages: stageMs(r),
      });
    }
    const health = ev.devices()[0]!;
    say(
      `${file.padEnd(26)} ${verdicts.map((v) => `${v.caught ? 'caught' : 'MISSED'} ${v.outcome}${v.flags.length ? `/${v.flags.join(',')}` : ''}`.padEnd(46)).join(' | ')}${health.healthy ? '' : '  DEVICE OUT OF ROTATION'}`,
    );
    rows.push({ file, verdicts, deviceHealthy: health.healthy });
  }
  await unchecked.close();
  report.hacks = rows;
}

if (parts.has('spread')) {
  say('\n## speedup spread: 5 evaluations of one candidate');
  const out: Record<string, unknown> = {};
  for (const id of ['softmax', 'matmul']) {
    const task = getTask(set, id);
    const code = readFileSync(
      solutionFiles(task).find((x) => x.endsWith('triton.py'))!,
      'utf8',
    );
    const speedups = [];
    let candMs = 0;
    for (let i = 0; i < 5; i++) {
      const r = await ev.evaluate({ task, code, seed: 100 + i });
      speedups.push(r.speedup ?? NaN);
      candMs = r.timing?.candidateMs ?? candMs;
    }
    const ratio = Math.max(...speedups) / Math.min(...speedups);
    say(
      `${id.padEnd(12)} candidate ${f(candMs, 3)} ms; speedups ${speedups.map((s) => f(s, 3)).join(' ')}; max/min ${f(ratio, 4)}`,
    );
    out[id] = { speedups, candidateMs: candMs, ratio };
  }
  report.spread = out;
}

if (parts.has('fork')) {
  say('\n## evaluations per GPU-hour: warm fork vs a fresh interpreter per job');
  const jobs: [Task, string][] = ['gelu', 'silu_mul', 'softmax', 'row_sum'].map((id) => {
    const t = getTask(set, id);
    return [
      t,
      readFileSync(
        solutionFiles(t).find((x) => x.endsWith('triton.py'))!,
        'utf8',
      ),
    ];
  });
  const out: Record<string, number> = {};
  const cfg = { timingBudgetMs: 1000 };
  for (const [mode, e] of [
    ['warm fork', ev],
    ['fresh interpreter', localService('torch', { cacheSize: 0, freshProcessPerJob: true })],
  ] as const) {
    await e.start();
    const t0 = performance.now();
    let n = 0;
    for (let round = 0; round < 2; round++)
      for (const [task, code] of jobs) {
        const r = await e.evaluate({ task, code, seed: 1000 + round, config: cfg });
        if (r.outcome !== 'ok') say(`  ${mode}: ${task.id} ${r.outcome} ${r.message.slice(0, 200)}`);
        n++;
      }
    const perEval = (performance.now() - t0) / n;
    out[mode] = 3_600_000 / perEval;
    say(
      `${mode.padEnd(18)} ${f(perEval / 1000, 2)} s per evaluation, ${Math.round(out[mode]!)} evaluations per GPU-hour`,
    );
    if (e !== ev) await e.close();
  }
  say(`ratio ${f(out['warm fork']! / out['fresh interpreter']!, 2)}×`);
  report.fork = out;
}

if (parts.has('kernelbench') && values.kernelbench) {
  say('\n## KernelBench level-1 elementwise tasks at their own sizes');
  const kb = loadTaskSet(`kernelbench:${values.kernelbench}`);
  const body = (expr: string) => `import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def ew_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, ${expr}, mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        ew_kernel[(triton.cdiv(n, 4096),)](x, out, n, BLOCK=4096, num_warps=8)
        return out
`;
  const cands: Record<string, string> = {
    l1_19_relu: body('tl.maximum(x, 0.0)'),
    l1_21_sigmoid: body('1.0 / (1.0 + tl.exp(-x))'),
    l1_25_swish: body('x / (1.0 + tl.exp(-x))'),
  };
  const rows = [];
  for (const [id, code] of Object.entries(cands)) {
    const task = getTask(kb, id);
    const t0 = performance.now();
    const r = await ev.evaluate({ task, code, seed: 3 });
    const wall = (performance.now() - t0) / 1000;
    say(
      `${id.padEnd(16)} ${r.outcome.padEnd(10)} wall ${f(wall, 2)} s  speedup ${f(r.speedup)}  ref ${f(r.timing?.referenceMs, 3)} ms  reps ${r.timing?.shapes[0]?.candidate.reps ?? '-'}  ${stageMs(r)}${r.outcome === 'ok' ? '' : `  ${r.message.slice(0, 300)}`}`,
    );
    rows.push({
      id,
      outcome: r.outcome,
      wallS: wall,
      speedup: r.speedup,
      referenceMs: r.timing?.referenceMs,
      stages: r.stages.map((s) => [s.name, Math.round(s.ms)]),
      message: r.message.slice(0, 500),
    });
  }
  report.kernelbench = rows;
}

report.devices = ev.devices();
await ev.close();
if (values.out) writeFileSync(values.out, JSON.stringify(report, null, 2));

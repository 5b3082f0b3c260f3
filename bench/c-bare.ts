/** The machine's own noise floor for the C fidelity benchmark: the reference
 * and a candidate linked into one plain process (no sandbox, no judge, no
 * freezer, no fresh inputs, no flushes), called alternately on the same warm
 * inputs, and the speedup taken as the judge takes it, the median of paired
 * ratios. A fresh process per measurement, as each evaluation has fresh
 * runners; under SCHED_FIFO with a rest of a quarter of each pair after it, as
 * the judge times calls, when the host allows it (root). What varies between these processes varies because of the machine,
 * so it bounds what any judge can do on it. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { argValues, type CTask } from '../tasks/loader.js';
import { CANDIDATE_CFLAGS } from '../sandbox/toolchain.js';

function harnessSource(task: CTask): string {
  const sizes = argValues(task, task.timing[0]!);
  const decls: string[] = [];
  const args = task.args.map((a, i) => {
    if (a.kind === 'in' || a.kind === 'out') {
      decls.push(`float *a${i} = aligned_alloc(64, ${sizes[i]}ul * 4 + 64);`);
      if (a.kind === 'in')
        decls.push(`fill(a${i}, ${sizes[i]}, ${a.gen.dist === 'normal' ? 1 : 0}, ${a.gen.a}, ${a.gen.b});`);
      else decls.push(`memset(a${i}, 0, ${sizes[i]}ul * 4);`);
      return `a${i}`;
    }
    if (a.kind === 'i32') return String(sizes[i]);
    return String(a.gen.a + (a.gen.dist === 'normal' ? 0 : 0.5 * (a.gen.b - a.gen.a)));
  });
  const proto = task.signature.replace(/\bsolve\(/, 'anvil_ref_solve(');
  return `#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
${task.signature};
${proto};
static double now_ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec * 1e-6; }
static void fill(float *p, size_t n, int normal, double a, double b) {
  for (size_t i = 0; i < n; i++) {
    double u = 0; for (int k = 0; k < 4; k++) u += rand() / (double)RAND_MAX;
    p[i] = normal ? (float)(a + b * (u - 2) * 1.7320508) : (float)(a + (b - a) * u / 4);
  }
}
static int cmp(const void *x, const void *y) { double a = *(const double *)x, b = *(const double *)y; return (a > b) - (a < b); }
int main(int argc, char **argv) {
  struct sched_param sp = {.sched_priority = 10};
  sched_setscheduler(0, SCHED_FIFO, &sp); /* refused unless root: then ordinary scheduling */
  int reps = atoi(argv[1]);
  double budget = atof(argv[2]), *ratio = malloc(sizeof(double) * reps), spent = 0;
  ${decls.join('\n  ')}
  anvil_ref_solve(${args.join(', ')});
  solve(${args.join(', ')});
  int k = 0;
  for (; k < reps && spent < budget; k++) {
    double t0 = now_ms(); anvil_ref_solve(${args.join(', ')});
    double t1 = now_ms(); solve(${args.join(', ')});
    double t2 = now_ms();
    ratio[k] = (t1 - t0) / (t2 - t1);
    spent += t2 - t0;
    double rest = (t2 - t0) / 4;
    struct timespec r = {(time_t)(rest / 1e3), (long)(fmod(rest, 1e3) * 1e6)};
    nanosleep(&r, NULL);
  }
  qsort(ratio, k, sizeof(double), cmp);
  printf("%.6f %d\\n", k % 2 ? ratio[k / 2] : 0.5 * (ratio[k / 2 - 1] + ratio[k / 2]), k);
  return 0;
}
`;
}

/** Builds the bare harness of one task and candidate; returns a function that runs it in a fresh process. */
export function bareHarness(task: CTask, candidateFile: string): () => number {
  const dir = mkdtempSync(path.join(os.tmpdir(), `anvil-bare-${task.id}-`));
  writeFileSync(path.join(dir, 'main.c'), harnessSource(task));
  writeFileSync(path.join(dir, 'reference.c'), task.referenceSource);
  const cc = (args: string[]) => execFileSync('gcc', args, { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  cc([...CANDIDATE_CFLAGS, '-Dsolve=anvil_ref_solve', '-c', '-o', 'reference.o', 'reference.c']);
  cc([...CANDIDATE_CFLAGS, '-c', '-o', 'candidate.o', candidateFile]);
  cc(['-O2', '-fopenmp', '-o', 'bare', 'main.c', 'reference.o', 'candidate.o', '-lm']);
  return () => {
    const [median] = execFileSync(path.join(dir, 'bare'), ['400', '2000']).toString().trim().split(' ');
    return Number(median);
  };
}

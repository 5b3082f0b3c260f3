/** EvalResult as text for people at a terminal. */
import type { EvalResult } from '../sandbox/result.js';

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toFixed(3));

export function formatResult(r: EvalResult): string {
  const out: string[] = [];
  out.push(`task      ${r.task.id} v${r.task.version}   code ${r.codeHash}${r.cached ? '   (cached)' : ''}`);
  out.push(`outcome   ${r.outcome}${r.correct ? '   correct' : ''}`);
  if (r.message) out.push(`message   ${r.message}`);
  if (r.speedup !== null) out.push(`speedup   ${r.speedup.toFixed(2)}×`);
  if (r.profileShare !== null)
    out.push(`own time  ${(100 * r.profileShare).toFixed(1)}%${r.profile?.measured ? ' (library ops used)' : ''}`);
  out.push('stages');
  for (const s of r.stages)
    out.push(`  ${s.name.padEnd(12)} ${s.status.padEnd(8)} ${s.status === 'skipped' ? '' : `${ms(s.ms)} ms`}`);
  if (r.correctness) {
    const c = r.correctness;
    out.push(
      `correctness  ${c.trialsPassed}/${c.trialsTotal} trials; max abs err ${c.maxAbsErr ?? '-'}, max rel err ${c.maxRelErr ?? '-'}`,
    );
  }
  for (const s of r.timing?.shapes ?? []) {
    out.push(
      `timing    shape ${s.shape}: candidate ${ms(s.candidate.medianMs)} ms (p10 ${ms(s.candidate.p10Ms)}, p90 ${ms(s.candidate.p90Ms)}, ${s.candidate.reps} reps)` +
        `, reference ${ms(s.reference.medianMs)} ms, speed of light ${s.solMs === null ? '-' : ms(s.solMs)} ms`,
    );
  }
  for (const f of r.flags) out.push(`flag      ${f.kind}: ${f.evidence}`);
  const failed = r.stages.find((s) => s.status === 'failed' && s.log);
  if (failed) out.push(`${failed.name} log:`, ...failed.log!.split('\n').map((l) => `  | ${l}`));
  out.push(
    `env       ${r.env.cpu}, ${r.env.cores} cores, ${r.env.compiler}, sandbox ${r.env.sandbox}, cgroup ${r.env.cgroup}`,
  );
  return `${out.join('\n')}\n`;
}

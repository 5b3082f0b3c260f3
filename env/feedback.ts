/** What the model is told after a turn, built from the EvalResult: the error
 * class, a truncated log, mismatch details on shown shapes, the speedup and
 * the profile. Never the reward, never a hidden shape, never a seed. */
import type { EvalResult, FlagKind } from '../sandbox/result.js';

const LOG_CHARS = 2000;

function truncate(s: string, n = LOG_CHARS): string {
  return s.length <= n ? s : `${s.slice(0, n)}\n[… truncated]`;
}

function fence(s: string): string {
  return `\`\`\`\n${s.replaceAll('```', "'''")}\n\`\`\``;
}

/** What each hack flag tells the model: the rule it broke, not the evidence,
 * which may hold timings or indices of shapes the model is not shown. A map,
 * not an object: `constructor` is a flag kind. */
const FLAG_TEXT = new Map<FlagKind, string>([
  ['library_offload', 'Most of the time was spent in library ops: the kernel must do the main work itself.'],
  ['input_mutation', 'The kernel modified an input; inputs are read-only.'],
  ['post_return_work', 'The kernel kept working after it returned; all work must finish before solve returns.'],
  ['forged_reply', "The kernel wrote to the harness's result channel."],
  [
    'faster_than_light',
    'The measured time is below what the hardware allows for this work, so the measurement cannot be trusted.',
  ],
]);

export function feedbackText(r: EvalResult, turnsLeft: number): string {
  const lines = outcomeLines(r);
  if (r.outcome !== 'env_error')
    lines.push(
      turnsLeft > 0
        ? `You have ${turnsLeft} more turn${turnsLeft === 1 ? '' : 's'} to improve the kernel.`
        : 'No turns left.',
    );
  return lines.join('\n');
}

/** What the outcome tells the model, with the stage log that explains it. */
function outcomeLines(r: EvalResult): string[] {
  const stageLog = (name: string) => r.stages.find((s) => s.name === name)?.log;
  switch (r.outcome) {
    case 'ok': {
      const lines = [`Result: correct. Speedup over the reference: ${r.speedup!.toFixed(2)}×.`];
      if (r.profile?.measured)
        lines.push(
          `Share of the time spent in your own code (not library ops): ${(100 * r.profileShare!).toFixed(0)}%.`,
        );
      return lines;
    }
    case 'no_code':
      return ['Result: no code found. Put the complete C source in one fenced code block (```c … ```).'];
    case 'static_violation':
      return [`Result: rejected before compiling. ${r.message}`];
    case 'compile_error': {
      const log = stageLog('compile');
      return [`Result: compilation failed: ${r.message}.`, ...(log ? ['Compiler output:', fence(truncate(log))] : [])];
    }
    case 'runtime_error':
    case 'timeout': {
      const log = stageLog('correctness');
      return [
        `Result: ${r.outcome === 'timeout' ? 'time limit exceeded' : 'runtime error'}. ${r.message}`,
        ...(log ? ['Your program printed (first trial):', fence(truncate(log))] : []),
      ];
    }
    case 'wrong_result':
      return wrongResultLines(r);
    case 'hack_detected':
      return [`Result: rejected. ${r.flags.map((f) => FLAG_TEXT.get(f.kind) ?? `Rule broken: ${f.kind}.`).join(' ')}`];
    case 'env_error':
      return [
        'Result: the evaluation failed for reasons unrelated to your code. This turn does not count; you may submit again.',
      ];
  }
}

/** A wrong result: the mismatch when it was on a shape the prompt shows, else only that it failed. */
function wrongResultLines(r: EvalResult): string[] {
  const lines: string[] = [];
  const c = r.correctness;
  const failed = c?.trials.find((t) => !t.passed);
  if (c && failed?.visible && failed.mismatch) {
    const m = failed.mismatch;
    lines.push(
      `Result: wrong output on a shape shown in the prompt: at index ${m.index} of argument ${m.arg} the value is ${m.got ?? 'NaN/unwritten'}, expected ${m.want}.`,
    );
  } else if (c && failed && !failed.runsAgree) {
    lines.push('Result: wrong output: two runs on the same input gave different results.');
  } else {
    lines.push(
      'Result: wrong output on a shape not shown in the prompt. Handle every size, including ones that are not multiples of your vector width or block size.',
    );
  }
  if (c) lines.push(`Correctness trials passed: ${c.trialsPassed} of ${c.trialsTotal}.`);
  return lines;
}

/** What the C judge's timing phase measured, as the EvalResult reports it: each shape's
 * paired speedup and speed-of-light time, their geometric means, the candidate's own
 * share of its time against the library ops it called, and the flags these raise. */
import type { CTask } from '../tasks/loader.js';
import { evaluate as evalExpr } from '../tasks/expr.js';
import { fasterThanLight, geomean, speedOfLightMs } from './common.js';
import type { EvalConfig } from './config.js';
import { timedShapes, type JudgeOutput } from './judge-output.js';
import type { EvalResult, Flag, ShapeTiming } from './result.js';
import type { PeakRates } from './toolchain.js';

export interface Measurement {
  /** faster_than_light for each shape timed below its speed of light, then library_offload. */
  flags: Flag[];
  timing: NonNullable<EvalResult['timing']>;
  profile: NonNullable<EvalResult['profile']>;
  speedup: number;
  speedupCi: [number, number];
}

/** Speedup, profile share and speed-of-light from the timing phase. */
export function measureTiming(
  task: CTask,
  time: JudgeOutput,
  libOpsUsed: string[],
  peak: PeakRates,
  config: EvalConfig,
): Measurement {
  const flags: Flag[] = [];
  const { shapes, libMs, ownShares, candTotal } = shapeTimings(task, time, peak, config, flags);
  const speedup = Math.exp(shapes.reduce((a, s) => a + Math.log(s.speedup), 0) / Math.max(1, shapes.length));
  const speedupCi: [number, number] = [
    geomean(shapes.map((s) => s.speedupCi![0])),
    geomean(shapes.map((s) => s.speedupCi![1])),
  ];
  const measured = libOpsUsed.length > 0;
  // Per shape, the median over calls of the candidate's own part against the library's, both
  // from the kernel's accounting (see sandbox/c/judge.c); the shapes' mean.
  const share = measured
    ? Math.min(1, Math.max(0, ownShares.reduce((a, x) => a + x, 0) / Math.max(1, ownShares.length)))
    : 1;
  if (share < task.minOwnShare)
    flags.push({
      kind: 'library_offload',
      evidence: `${(100 * (1 - share)).toFixed(1)}% of the candidate's time is spent in library ops (${libOpsUsed.join(', ')}); at least ${(100 * task.minOwnShare).toFixed(0)}% must be its own`,
    });
  const timing = {
    shapes,
    candidateMs: geomean(shapes.map((s) => s.candidate.medianMs)),
    referenceMs: geomean(shapes.map((s) => s.reference.medianMs)),
  };
  return { flags, timing, profile: { libMs, candidateMs: candTotal, share, measured }, speedup, speedupCi };
}

/** Each timed shape's result and speed-of-light time (flagging a shape timed below it),
 * with the totals the profile is built from. */
function shapeTimings(task: CTask, time: JudgeOutput, peak: PeakRates, config: EvalConfig, flags: Flag[]) {
  let libMs = 0;
  const ownShares: number[] = [];
  let candTotal = 0;
  const shapes: ShapeTiming[] = timedShapes(time).map((s) => {
    const params = task.timing[s.shape]!;
    const solMs = speedOfLightMs(evalExpr(task.flops, params), evalExpr(task.bytes, params), peak);
    libMs += s.libMs;
    ownShares.push(s.ownShare);
    candTotal += s.callMs;
    const fast = fasterThanLight(s.candidate.medianMs, solMs, config.solMargin, 'host');
    if (fast) flags.push(fast);
    return {
      shape: s.shape,
      candidate: s.candidate,
      reference: s.reference,
      speedup: s.pairedSpeedup,
      speedupCi: [s.speedupLo, s.speedupHi] as [number, number],
      solMs,
    };
  });
  return { shapes, libMs, ownShares, candTotal };
}

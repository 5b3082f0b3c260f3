/** The C judge's answer (sandbox/c/judge.c writes one JSON object on stdout),
 * parsed at the boundary. It is the C backend's private contract: only
 * c-backend.ts and the evaluator read it, and its outcomes are the EvalResult's
 * (sandbox/result.ts), so it lives beside the backend, not in contracts/.
 *
 * An answer that does not parse is the judge's failure, never the candidate's:
 * runJudge turns it into an env_error. The judge writes a non-finite number as
 * null; where the evaluator computes with a number, null does not parse. */
import { z } from 'zod';
import { FlagSchema } from '../contracts/errors.js';
import { TimingStatsSchema, OUTCOMES } from './result.js';

const Int = z.number().int();
const MaybeNumber = z.number().nullable();

const MismatchSchema = z.object({ arg: Int, index: Int, got: MaybeNumber, want: MaybeNumber });

const TrialSchema = z.object({
  shape: Int,
  visible: z.boolean(),
  regime: z.string(),
  passed: z.boolean(),
  runsAgree: z.boolean(),
  sensitive: z.boolean(),
  maxAbsErr: MaybeNumber,
  maxRelErr: MaybeNumber,
  toleranceUsed: MaybeNumber,
  mismatch: MismatchSchema.optional(),
  insensitive: z.object({ arg: Int, index: Int, referenceMoved: MaybeNumber, candidateMoved: MaybeNumber }).optional(),
});

/** A shape the timing phase measured to the end. */
const TimedShapeSchema = z.object({
  shape: Int,
  pairedSpeedup: z.number(),
  speedupLo: z.number(),
  speedupHi: z.number(),
  candidate: TimingStatsSchema,
  reference: TimingStatsSchema,
  libMs: z.number(),
  ownShare: z.number(),
  callMs: z.number(),
  /** The largest error of the shape's timed outputs as a share of the timing tolerance. */
  toleranceUsed: MaybeNumber,
});
export type TimedShape = z.infer<typeof TimedShapeSchema>;

/** The shape and repetition where the timing phase stopped, and what it saw there. */
const FailedShapeSchema = z.object({
  shape: Int,
  failedRep: Int,
  visible: z.boolean().optional(),
  /** The failed call's inputs (plain, blocks, trend, spikes), and whether it was a sensitivity run. */
  regime: z.string().optional(),
  sensitivityRun: z.boolean().optional(),
  /** The failed output's error as a share of the timing tolerance. */
  toleranceUsed: MaybeNumber.optional(),
  mismatch: MismatchSchema.optional(),
  insensitive: TrialSchema.shape.insensitive,
});
type FailedShape = z.infer<typeof FailedShapeSchema>;

export const JudgeOutputSchema = z
  .object({
    /** Absent only when the judge failed before it read its spec. */
    phase: z.enum(['check', 'time']).optional(),
    outcome: z.enum(OUTCOMES),
    message: z.string().optional(),
    /** How the candidate's (or the reference's) process ended, in the judge's words. */
    death: z.string().optional(),
    flags: z.array(FlagSchema).optional(),
    trials: z.array(TrialSchema).optional(),
    trialsPassed: Int.optional(),
    trialsTotal: Int.optional(),
    failedTrial: Int.optional(),
    failedVisible: Int.optional(),
    maxAbsErr: MaybeNumber.optional(),
    maxRelErr: MaybeNumber.optional(),
    logBytesFirstTrial: Int.optional(),
    shapes: z.array(z.union([TimedShapeSchema, FailedShapeSchema])).optional(),
  })
  .refine(
    (o) =>
      o.phase !== 'time' ||
      o.outcome !== 'ok' ||
      (o.shapes !== undefined && o.shapes.every((s) => 'pairedSpeedup' in s)),
    {
      message: 'a timing phase that ended ok must hold a measured entry for every shape',
      path: ['shapes'],
    },
  );
export type JudgeOutput = z.infer<typeof JudgeOutputSchema>;

/** The shapes a timing phase measured (all of them when it ended ok). */
export function timedShapes(out: JudgeOutput): TimedShape[] {
  return (out.shapes ?? []).filter((s): s is TimedShape => 'pairedSpeedup' in s);
}

/** Where a timing phase that failed on an output stopped, and what it saw there: for the
 * timing stage's log (in the evaluation result, as `anvil eval --json` prints it; never in feedback). */
export function timingFailureLog(out: JudgeOutput): string | undefined {
  const failed = (out.shapes ?? []).find((s): s is FailedShape => 'failedRep' in s);
  if (!failed || (!failed.mismatch && !failed.insensitive)) return undefined;
  const at = `timing shape ${failed.shape}, call ${failed.failedRep} (${failed.regime ?? '?'} inputs${failed.sensitivityRun ? ', sensitivity run' : ''})`;
  if (failed.mismatch) {
    const m = failed.mismatch;
    const share = failed.toleranceUsed == null ? '' : `; ${failed.toleranceUsed} of the tolerance`;
    return `${at}: argument ${m.arg} at ${m.index}: got ${m.got}, want ${m.want}${share}`;
  }
  const i = failed.insensitive!;
  return `${at}: argument ${i.arg} at ${i.index} moved ${i.candidateMoved} where the reference's moved ${i.referenceMoved}`;
}

/** The judge's stdout as its answer; or, when it is not one, whether it was JSON at all
 * (a judge that died writes none) and what is wrong with it, for the env_error's message. */
export type ParsedJudgeOutput = { ok: true; output: JudgeOutput } | { ok: false; json: boolean; problems: string };

export function parseJudgeOutput(stdout: string): ParsedJudgeOutput {
  let value: unknown;
  try {
    value = JSON.parse(stdout);
  } catch (e) {
    return { ok: false, json: false, problems: (e as Error).message };
  }
  const parsed = JudgeOutputSchema.safeParse(value);
  if (parsed.success) return { ok: true, output: parsed.data };
  return {
    ok: false,
    json: true,
    problems: parsed.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.join('.') || 'answer'}: ${i.message}`)
      .join('; '),
  };
}

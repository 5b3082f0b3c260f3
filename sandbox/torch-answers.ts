/** What the torch harness (sandbox/torch/harness.py) answers, parsed at the
 * boundary: its greeting, and one answer per job with the judge's result for the
 * job's phase (run, compile or health). Private to the torch backend, like the
 * C judge's answer (sandbox/judge-output.ts), and for the same reasons.
 *
 * An answer that does not parse is the environment's failure: the harness is
 * restarted and the evaluation is an env_error. So the fields a candidate can
 * reach (the texts its processes report: logs) are taken as any value and made
 * text, never refused: a candidate must not turn its own failure into a masked
 * turn by sending an odd log. The harness writes a non-finite number as null. */
import { z } from 'zod';
import { FlagSchema } from '../contracts/errors.js';
import { TimingStatsSchema, OUTCOMES, STAGES, type StageRecord } from './result.js';

const Int = z.number().int();
const MaybeNumber = z.number().nullable();
/** Text that may come from the candidate's processes: any value, as text (absent when null). */
const Text = z
  .unknown()
  .transform((v) => (v === undefined || v === null ? undefined : typeof v === 'string' ? v : JSON.stringify(v)))
  .optional();

/** The first line of a warm harness. */
export const GreetingSchema = z.object({ ready: z.literal(true) });

const StageSchema = z.object({ status: z.enum(['ok', 'failed']), ms: z.number(), log: Text });
const StagesSchema = z.partialRecord(z.enum(STAGES), StageSchema);

/** The stages a phase reports, as stage records (a log only where there is one). */
export function stageRecords(stages: z.infer<typeof StagesSchema> | undefined): StageRecord[] {
  return STAGES.flatMap((name) => {
    const s = stages?.[name];
    return s ? [{ name, status: s.status, ms: s.ms, ...(s.log !== undefined ? { log: s.log } : {}) }] : [];
  });
}

const TrialSchema = z.object({
  shape: Int,
  visible: z.boolean(),
  passed: z.boolean(),
  runsAgree: z.boolean(),
  maxAbsErr: MaybeNumber,
  maxRelErr: MaybeNumber,
  mismatch: z.object({ arg: Int, index: Int, got: MaybeNumber, want: MaybeNumber }).optional(),
});

/** The correctness trials' summary: a passed phase's, or what a failed one had seen. */
const CheckFields = {
  trials: z.array(TrialSchema).optional(),
  trialsPassed: Int.optional(),
  trialsTotal: Int.optional(),
  maxAbsErr: MaybeNumber.optional(),
  maxRelErr: MaybeNumber.optional(),
  failedVisible: z.boolean().optional(),
};
const CheckSchema = z.object({ ...CheckFields, trials: z.array(TrialSchema) });
export type Check = { [K in keyof typeof CheckFields]?: z.infer<(typeof CheckFields)[K]> };

const TimedShapeSchema = z.object({
  shape: Int,
  candidate: TimingStatsSchema,
  reference: TimingStatsSchema,
  pairedSpeedup: z.number(),
  bytes: z.number(),
  flops: MaybeNumber.optional(),
  /** What the judge/candidate split costs a call, measured on the reference. */
  splitMs: z.number().optional(),
});

const ProfileSchema = z.object({
  ownMs: z.number(),
  totalMs: z.number(),
  ownKernels: z.array(z.string()),
  kernels: z.array(z.object({ name: z.string(), ms: z.number() })),
  launchedTriton: z.array(z.string()),
  /** Device kernels were profiled (a GPU), not CPU time. */
  device: z.boolean(),
});

/** Any phase's result: an outcome, and what the phase saw on the way. */
const ResultSchema = z.object({
  outcome: z.enum(OUTCOMES),
  message: z.string().optional(),
  flags: z.array(FlagSchema).optional(),
  stages: StagesSchema.optional(),
  correctness: CheckSchema.optional(),
  ...CheckFields,
  log: Text,
  /** A runtime error that mentions CUDA: the device is checked again. */
  deviceSuspect: z.boolean().optional(),
});

/** A run that passed every stage carries its measurements. */
const RunOkSchema = z.object({
  outcome: z.literal('ok'),
  stages: StagesSchema,
  correctness: CheckSchema,
  shapes: z.array(TimedShapeSchema),
  profile: ProfileSchema,
  flags: z.array(FlagSchema),
});
export type RunOk = z.infer<typeof RunOkSchema>;
const RunResultSchema = z.union([RunOkSchema, ResultSchema.extend({ outcome: z.enum(OUTCOMES).exclude(['ok']) })]);

export const HealthSchema = z.object({
  ok: z.boolean(),
  name: z.string().optional(),
  capability: z.string().optional(),
  l2Bytes: z.number().optional(),
  freeBytes: z.number().optional(),
  totalBytes: z.number().optional(),
  torch: z.string().optional(),
  triton: z.string().optional(),
  cuda: z.string().nullish(),
  peaks: z.object({ bytesPerSecond: z.number(), flopsPerSecond: z.number() }).optional(),
});
export type Health = z.infer<typeof HealthSchema>;

/** How the job's process ended when it sent no result. */
const DeathSchema = z.object({
  kind: z.enum(['timeout', 'signal', 'exit']),
  stage: z.string(),
  limitMs: MaybeNumber.optional(),
  signal: Int.nullish(),
  signalName: z.string().nullish(),
  code: Int.nullish(),
});

function answerOf<R extends z.ZodType>(result: R) {
  return z.object({
    id: z.string(),
    result: result.optional(),
    death: DeathSchema.optional(),
    /** Lines on the result pipe without the job's nonce: evidence of a forged verdict. */
    forged: z.array(z.string()).optional(),
    log: z.string(),
    stagesSeen: z.array(z.tuple([z.string(), z.number()])),
    ms: z.number(),
  });
}

export const RunAnswerSchema = answerOf(RunResultSchema);
export const CompileAnswerSchema = answerOf(ResultSchema);
export const HealthAnswerSchema = answerOf(ResultSchema.extend({ health: HealthSchema.optional() }));
export type RunAnswer = z.infer<typeof RunAnswerSchema>;
export type CompileAnswer = z.infer<typeof CompileAnswerSchema>;
export type HealthAnswer = z.infer<typeof HealthAnswerSchema>;

/** The harness's own fault (an exception outside any job): never the candidate's. */
const FaultSchema = z.object({ id: z.unknown(), harnessError: z.string() });

/** The harness's answer does not have the shape its phase's answers have. */
export class HarnessAnswerError extends Error {
  constructor(readonly problems: string) {
    super(`the harness's answer is malformed: ${problems}`);
    this.name = 'HarnessAnswerError';
  }
}

/** One line of the harness as an answer of `schema`; throws HarnessAnswerError, or an Error for a harness fault. */
export function parseAnswer<S extends z.ZodType>(schema: S, line: string): z.infer<S> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    throw new HarnessAnswerError(`not JSON (${(e as Error).message}): ${line.slice(0, 200)}`);
  }
  const fault = FaultSchema.safeParse(value);
  if (fault.success) throw new Error(`harness fault: ${fault.data.harnessError}`);
  const parsed = schema.safeParse(value);
  if (!parsed.success)
    throw new HarnessAnswerError(
      parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join('.') || 'answer'}: ${i.message}`)
        .join('; '),
    );
  return parsed.data;
}

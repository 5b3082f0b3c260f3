/** The per-turn record: one JSON line of the turn log per step, written by the
 * server before its answer leaves (env/log.ts validates it with this schema) and
 * read by the export, the run statistics, the report and the dashboard, which
 * parse each line with `StoredTurnRecordSchema` and report a line that does not
 * parse instead of casting it. Shared contracts import only zod. */
import { z } from 'zod';

export const ChatMessageSchema = z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string() });
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

export const ObservationSchema = z.object({ messages: z.array(ChatMessageSchema) });
export type Observation = z.infer<typeof ObservationSchema>;

/** Why a step ended its episode, or why it was not counted. */
export const StepReasonSchema = z.enum(['max_turns', 'solved', 'cancelled', 'env_error', 'invalid_action']);
export type StepReason = z.infer<typeof StepReasonSchema>;

/** The reward configuration the turn was scored with (rewards/config.ts validates it; here it is only carried). */
const RewardConfigRecord = z.object({
  formula: z.string(),
  wCorrect: z.number(),
  wSpeed: z.number(),
  wProfile: z.number(),
  speedCap: z.number(),
  failureReward: z.number(),
  hackReward: z.number(),
});

/** What the evaluation found, as logged. Outcomes and flag kinds are free strings
 * until the registry of outcomes and flags joins the contracts. */
const EvalSummarySchema = z.object({
  outcome: z.string(),
  correct: z.boolean(),
  speedup: z.number().nullable(),
  profileShare: z.number().nullable(),
  flags: z.array(z.object({ kind: z.string(), evidence: z.string() })),
  message: z.string(),
  stages: z.array(z.object({ name: z.string(), status: z.enum(['ok', 'failed', 'skipped']), ms: z.number() })),
  cached: z.boolean(),
  codeHash: z.string(),
  sandbox: z.enum(['bwrap', 'none']),
});
export type EvalSummary = z.infer<typeof EvalSummarySchema>;

const Integer = z.number().int();

/** Every field, as the server writes it; the key order is the order of the JSON line. */
export const TurnRecordSchema = z.strictObject({
  run: z.string(),
  /** ISO 8601, when the record was written. */
  time: z.string(),
  serverVersion: z.string(),
  session: z.string(),
  episode: z.string(),
  group: z.string(),
  /** The episode's place in its group. */
  index: Integer,
  taskset: z.string(),
  task: z.string(),
  taskVersion: Integer,
  taskDigest: z.string(),
  seed: Integer,
  turn: Integer,
  /** What the model was shown before this reply. */
  observation: ObservationSchema,
  action: z.string(),
  /** What the model is shown after it. */
  feedback: z.string(),
  /** The client's own data, as sent (null when none). */
  meta: z.unknown(),
  completionIds: z.array(Integer).nullable(),
  logprobs: z.array(z.number()).nullable(),
  policyVersion: z.string().nullable(),
  eval: EvalSummarySchema.nullable(),
  reward: z.number(),
  components: z.record(z.string(), z.number()),
  rewardConfig: RewardConfigRecord,
  terminated: z.boolean(),
  truncated: z.boolean(),
  reason: StepReasonSchema.nullable(),
  /** True when the turn must not train the policy (an infrastructure failure or a cancel). */
  mask: z.boolean(),
  timings: z.object({ queuedMs: z.number(), totalMs: z.number(), stages: z.record(z.string(), z.number()) }),
});
export type TurnRecord = z.infer<typeof TurnRecordSchema>;

/** A record as the readers take it from a log: written by this version or an
 * earlier one, or by hand. Fields earlier versions did not write (feedback, the
 * token data, the policy version), and those the readers never needed, may be
 * missing; where a reader stands in a value for a missing field, the default is
 * that value. Unknown fields (from later versions) are dropped. */
export const StoredTurnRecordSchema = z.object({
  ...TurnRecordSchema.shape,
  serverVersion: z.string().optional(),
  session: z.string().optional(),
  // Hand-made logs (the export's tests) may leave it out; the statistics group by it.
  taskset: z.string().default('unknown'),
  taskDigest: z.string().optional(),
  // Logs written before the feedback was recorded: the next turn's observation is it.
  feedback: z.string().optional(),
  meta: z
    .unknown()
    .optional()
    .transform((m): unknown => m ?? null),
  completionIds: z.array(Integer).nullable().default(null),
  logprobs: z.array(z.number()).nullable().default(null),
  policyVersion: z.string().nullable().default(null),
  eval: EvalSummarySchema.extend({
    flags: EvalSummarySchema.shape.flags.default([]),
    message: z.string().default(''),
    stages: EvalSummarySchema.shape.stages.default([]),
    cached: z.boolean().optional(),
    codeHash: z.string().optional(),
    sandbox: z.string().optional(),
  }).nullable(),
  components: z.record(z.string(), z.number()).default({}),
  // Carried, never read: an earlier version's configuration may have other fields.
  rewardConfig: z.record(z.string(), z.unknown()).optional(),
  timings: TurnRecordSchema.shape.timings.optional(),
});
export type StoredTurnRecord = z.infer<typeof StoredTurnRecordSchema>;

/** Why a value is not a turn record, in one line: the first few problems with their paths. */
export function recordProblems(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.join('.') : 'record'}: ${i.message}`)
    .join('; ');
}

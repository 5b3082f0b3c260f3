/** Protocol v1's answers, as zod schemas: the client parses every frame with them where
 * it arrives, and the types it returns are inferred from them. Parts the protocol leaves
 * open (info, the evaluation, hello's and state's fields, a task's listing) are loose:
 * their unknown fields pass through. */
import { z } from 'zod';
import { ChatMessageSchema, ObservationSchema, StepReasonSchema } from '../../contracts/record.js';

export type ChatMessage = z.infer<typeof ChatMessageSchema>;
export type Observation = z.infer<typeof ObservationSchema>;

export const ResetEpisodeSchema = z.object({
  episode: z.string(),
  group: z.string(),
  index: z.number(),
  observation: ObservationSchema,
  info: z.looseObject({
    task: z.string(),
    taskVersion: z.number(),
    taskset: z.string(),
    split: z.string(),
    seed: z.number(),
    maxTurns: z.number(),
  }),
});
export type ResetEpisode = z.infer<typeof ResetEpisodeSchema>;

const EvalInfoSchema = z.looseObject({
  outcome: z.string(),
  correct: z.boolean(),
  speedup: z.number().nullable(),
  profileShare: z.number().nullable(),
  flags: z.array(z.looseObject({ kind: z.string(), evidence: z.string() })),
  message: z.string(),
  cached: z.boolean(),
  stages: z.array(z.looseObject({ name: z.string(), status: z.string(), ms: z.number() })),
});

export const StepResultSchema = z.object({
  episode: z.string(),
  observation: ObservationSchema,
  reward: z.number(),
  terminated: z.boolean(),
  truncated: z.boolean(),
  reason: StepReasonSchema.optional(),
  info: z.looseObject({
    turn: z.number(),
    mask: z.boolean(),
    outcome: z.string(),
    task: z.string(),
    components: z.record(z.string(), z.number()),
    eval: EvalInfoSchema.nullable(),
  }),
});
export type StepResult = z.infer<typeof StepResultSchema>;

export const ProgressSchema = z.object({ stage: z.string(), queuePosition: z.number().optional() });
export type Progress = z.infer<typeof ProgressSchema>;

export const HelloAnswerSchema = z.looseObject({
  session: z.string(),
  resumeToken: z.string(),
  resumed: z.boolean(),
  version: z.string(),
  protocol: z.literal(1),
  backends: z.array(z.string()),
  tasksets: z.array(z.string()),
  limits: z.record(z.string(), z.number()),
});
export type HelloAnswer = z.infer<typeof HelloAnswerSchema>;

export const TaskListSchema = z.object({
  taskset: z.string(),
  tasks: z.array(
    z.looseObject({
      id: z.string(),
      title: z.string(),
      backend: z.string(),
      split: z.enum(['train', 'eval']),
      tags: z.array(z.string()),
      version: z.number(),
      signature: z.string(),
      /** Only the shapes the prompt shows. */
      shapes: z.array(z.record(z.string(), z.number())),
    }),
  ),
});
export type TaskList = z.infer<typeof TaskListSchema>;

export const EpisodeSnapshotSchema = z.looseObject({
  episode: z.string(),
  group: z.string(),
  index: z.number(),
  task: z.string(),
  seed: z.number(),
  state: z.enum(['ready', 'stepping', 'done']),
  maxTurns: z.number(),
  turns: z.array(
    z.looseObject({
      turn: z.number(),
      action: z.string(),
      outcome: z.string(),
      reward: z.number(),
      components: z.record(z.string(), z.number()),
      speedup: z.number().nullable(),
      feedback: z.string(),
      codeHash: z.string(),
    }),
  ),
  endReason: StepReasonSchema.nullable(),
  observation: ObservationSchema,
});
export type EpisodeSnapshot = z.infer<typeof EpisodeSnapshotSchema>;

export const ResetAnswerSchema = z.object({ episodes: z.array(ResetEpisodeSchema) });
export const StepAnswerSchema = StepResultSchema.extend({ event: z.literal('result') });
export const CancelAnswerSchema = z.object({ cancelled: z.union([z.string(), z.number()]) });
export const CloseAnswerSchema = z.object({ closed: z.string() });
export const PingAnswerSchema = z.object({ pong: z.literal(true), time: z.number() });

/** Every frame the server sends: a failure, a step's progress, or an answer (whose body
 * the request's own schema then parses). */
export const FrameSchema = z.discriminatedUnion('ok', [
  z.object({
    id: z.union([z.string(), z.number(), z.null()]),
    ok: z.literal(false),
    error: z.object({
      code: z.string(),
      message: z.string(),
      retryable: z.boolean(),
      retryAfterMs: z.number().optional(),
    }),
  }),
  z.discriminatedUnion('event', [
    ProgressSchema.extend({ id: z.union([z.string(), z.number()]), ok: z.literal(true), event: z.literal('progress') }),
    z.looseObject({
      id: z.union([z.string(), z.number()]),
      ok: z.literal(true),
      event: z.literal('result').optional(),
    }),
  ]),
]);

/** Just enough of a frame to find the request it answers: this client's ids are integers. */
export const AddressedSchema = z.object({ id: z.number() });

/** What is wrong with a frame, as `path: problem`, the first few. */
export const problemsOf = (error: z.ZodError): string[] =>
  error.issues.slice(0, 3).map((i) => `${i.path.length ? i.path.join('.') : 'frame'}: ${i.message}`);

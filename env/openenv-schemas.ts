/** The OpenEnv front door's shapes: the messages and bodies it takes, the observation
 * and state it answers, and its errors, as OpenEnv's server writes them. */
import { z } from 'zod';
import { ChatMessageSchema } from '../contracts/record.js';
import { ProtocolError, type DoorCode } from './errors.js';
import {
  CompletionIdsSchema,
  LogprobsSchema,
  MAX_META_DEPTH,
  META_RULE,
  plainJsonWithin,
  PolicyVersionSchema,
  ResetOptionsSchema,
} from './protocol.js';

/** A reset's `data` (WebSocket) or body (HTTP): protocol v1's reset options. */
export const OpenEnvResetSchema = z
  .object({
    seed: z.number().int().min(0).safe().optional(),
    task: z.string().max(128).optional(),
    taskset: z.string().max(256).optional(),
    split: z.enum(['train', 'eval']).optional(),
    /** Episodes of one GRPO group share it; the export's baseline is computed within a group. */
    group_id: z.string().min(1).max(128).optional(),
    options: ResetOptionsSchema.optional(),
  })
  .strict();

/** The action: the model's whole reply, optionally its tokens (logged and exported, never scored). */
export const KernelActionSchema = z
  .object({
    message: z.string().describe("the model's reply; the kernel is extracted from it as in protocol v1"),
    completion_ids: CompletionIdsSchema.optional(),
    logprobs: LogprobsSchema.optional(),
    policy_version: PolicyVersionSchema.optional(),
    metadata: z
      .record(z.string(), z.unknown())
      .refine((v) => plainJsonWithin(v, MAX_META_DEPTH), META_RULE)
      .optional()
      .describe('kept in the turn log as meta'),
  })
  .strict()
  .refine(
    (a) => a.logprobs === undefined || a.completion_ids?.length === a.logprobs.length,
    'logprobs needs completion_ids of the same length',
  );

/** The observation as OpenEnv's Observation model (done, reward, metadata and the fields);
 * on the wire, done and reward travel beside it as OpenEnv's serializer puts them. */
export const KernelObservationSchema = z.object({
  done: z.boolean(),
  reward: z.number().nullable(),
  metadata: z.record(z.string(), z.unknown()),
  messages: z
    .array(ChatMessageSchema)
    .describe('the messages to show the model next: the prompt after reset, the feedback after a step'),
  episode_id: z.string(),
  group_id: z.string(),
  index: z.number().int(),
  task: z.string(),
  turn: z.number().int().describe('counted turns so far'),
  terminated: z.boolean(),
  truncated: z.boolean(),
  reason: z
    .string()
    .nullable()
    .describe('why the episode ended: solved, max_turns, invalid_action; null while it goes on'),
  info: z
    .record(z.string(), z.unknown())
    .describe("protocol v1's info of the reset or the step (mask, outcome, components, eval)"),
});

export const KernelStateSchema = z.object({
  episode_id: z.string().nullable(),
  step_count: z.number().int().min(0),
  group_id: z.string().nullable(),
  index: z.number().int().nullable(),
  task: z.string().nullable(),
  seed: z.number().int().nullable(),
  state: z.enum(['none', 'ready', 'stepping', 'done']),
  max_turns: z.number().int().nullable(),
  end_reason: z.string().nullable(),
});

export const HttpStepSchema = z
  .object({
    action: z.unknown(),
    episode_id: z.string().min(1).max(64).describe('from the observation of /reset: HTTP has no session'),
    request_id: z
      .string()
      .min(1)
      .max(255)
      .optional()
      .describe('a retry with the same id gets the same answer, never a second evaluation'),
  })
  .strict();

export const WsMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('reset'), data: z.record(z.string(), z.unknown()).default({}) }).strict(),
  z.object({ type: z.literal('step'), data: z.record(z.string(), z.unknown()) }).strict(),
  z.object({ type: z.literal('state') }).strict(),
  z.object({ type: z.literal('close') }).strict(),
]);

/** An error of the front door's own, with OpenEnv's code. */
export class DoorError extends Error {
  constructor(
    readonly code: DoorCode,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export function errorData(e: unknown): Record<string, unknown> {
  if (e instanceof DoorError) return { message: e.message, code: e.code, ...e.extra };
  if (e instanceof ProtocolError) {
    const w = e.toWire();
    return {
      message: w.message,
      code: w.code.toUpperCase(),
      retryable: w.retryable,
      ...(w.retryAfterMs !== undefined ? { retry_after_ms: w.retryAfterMs } : {}),
    };
  }
  console.error('openenv: internal error:', e);
  return { message: 'internal error', code: 'INTERNAL', retryable: true };
}

export function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new DoorError(
    'VALIDATION_ERROR',
    `${what}: ${issue.path.length ? `${issue.path.join('.')}: ` : ''}${issue.message}`,
    { errors: r.error.issues.slice(0, 10).map((i) => ({ loc: i.path, msg: i.message })) },
  );
}

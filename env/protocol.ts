/** Protocol v1 (docs/protocol.md): every client message as a zod schema, parsed once
 * where a frame arrives; handlers see only typed messages. */
import { z } from 'zod';
import { RewardOverrideSchema } from '../rewards/config.js';

export const PROTOCOL_VERSION = 1;

const Id = z.union([z.string().min(1).max(128), z.number().int().safe()]);
export type RequestId = z.infer<typeof Id>;
const EpisodeId = z.string().min(1).max(64);

export const ActionSchema = z.union([
  z.string(),
  z.object({ role: z.literal('assistant'), content: z.string() }).strict(),
]);

const Hello = z
  .object({
    id: Id,
    op: z.literal('hello'),
    protocol: z.literal(PROTOCOL_VERSION),
    token: z.string().max(1024).optional(),
    client: z.string().max(256).optional(),
    resume: z.string().max(256).optional(),
  })
  .strict();

const Tasks = z
  .object({
    id: Id,
    op: z.literal('tasks'),
    taskset: z.string().max(256).optional(),
    split: z.enum(['train', 'eval']).optional(),
  })
  .strict();

/** A reset's options (shared with the OpenEnv front door). */
export const ResetOptionsSchema = z
  .object({
    maxTurns: z.number().int().positive().optional(),
    /** The backend the client expects; a reset on a task set of another backend is refused. */
    backend: z.enum(['c', 'torch']).optional(),
    reward: RewardOverrideSchema.optional(),
  })
  .strict();

/** Tokens of a step's completion, for token-in/token-out trainers: logged and exported
 * as given, never used to score. At most one id (and one log-probability) per reply character. */
export const CompletionIdsSchema = z.array(z.number().int().nonnegative().safe()).max(512 * 1024);
export const PolicyVersionSchema = z.union([z.string().min(1).max(128), z.number().int().safe()]);
export const LogprobsSchema = z.array(z.number().finite().max(0)).max(512 * 1024);

/** Levels of arrays and objects `meta` may nest: deeper values overflow the stack of
 * JSON.stringify (the size check, the log) long before they reach a size limit. */
export const MAX_META_DEPTH = 64;

/** True when `value` is plain JSON data (null, booleans, finite numbers, strings, arrays and
 * plain objects: MessagePack's extension types decode to a BigInt, a Date, a Set, a RegExp…,
 * which JSON.stringify throws on or silently empties) nesting at most `max` levels; checked
 * without recursion. */
export function plainJsonWithin(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v === 'string' || typeof v === 'boolean') continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return false;
      continue;
    }
    if (typeof v !== 'object' || depth >= max) return false;
    const proto = Object.getPrototypeOf(v);
    if (!Array.isArray(v) && proto !== Object.prototype && proto !== null) return false;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return true;
}

export const META_RULE = `must be plain JSON data nesting at most ${MAX_META_DEPTH} levels`;

/** A step's `meta`: opaque, logged, never read; bounded in depth here, in bytes by the Gym. */
export const MetaSchema = z.unknown().refine((v) => plainJsonWithin(v, MAX_META_DEPTH), META_RULE);

const Reset = z
  .object({
    id: Id,
    op: z.literal('reset'),
    task: z.string().max(128).optional(),
    taskset: z.string().max(256).optional(),
    split: z.enum(['train', 'eval']).optional(),
    seed: z.number().int().safe().optional(),
    group: z
      .object({ id: z.string().min(1).max(128).optional(), size: z.number().int().positive().optional() })
      .strict()
      .optional(),
    options: ResetOptionsSchema.optional(),
  })
  .strict();

const Step = z
  .object({
    id: Id,
    op: z.literal('step'),
    episode: EpisodeId,
    action: ActionSchema,
    meta: MetaSchema.optional(),
    completionIds: CompletionIdsSchema.optional(),
    logprobs: LogprobsSchema.optional(),
    /** The policy (weights) that sampled the reply, e.g. the trainer's step: logged and exported. */
    policyVersion: PolicyVersionSchema.optional(),
  })
  .strict()
  .refine(
    (m) => m.logprobs === undefined || m.completionIds?.length === m.logprobs.length,
    'logprobs needs completionIds of the same length',
  );
const Cancel = z.object({ id: Id, op: z.literal('cancel'), target: Id }).strict();
const State = z.object({ id: Id, op: z.literal('state'), episode: EpisodeId }).strict();
const Close = z.object({ id: Id, op: z.literal('close'), episode: EpisodeId }).strict();
const Ping = z.object({ id: Id, op: z.literal('ping') }).strict();

export const ClientMessageSchema = z.discriminatedUnion('op', [Hello, Tasks, Reset, Step, Cancel, State, Close, Ping]);
export type ClientMessage = z.infer<typeof ClientMessageSchema>;
export type Op = ClientMessage['op'];
export const OPS: readonly Op[] = ['hello', 'tasks', 'reset', 'step', 'cancel', 'state', 'close', 'ping'];
export type Msg<O extends Op> = Extract<ClientMessage, { op: O }>;

export type { ChatMessage, Observation, StepReason } from '../contracts/record.js';

export const IdSchema = Id;

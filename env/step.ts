/** The step pipeline's stages, after evaluation: reward input → reward →
 * feedback → record → answer. One shape of a turn, `Turn`, flows through them;
 * each stage is a small function of it. The rules that decide how a turn ends
 * are layers of their own (rules.ts); the Gym runs evaluation and the stages. */
import type { TurnRecord } from '../contracts/record.js';
import { computeReward, type Reward, type RewardInput } from '../rewards/reward.js';
import type { RewardConfig } from '../rewards/config.js';
import { geomean } from '../sandbox/common.js';
import type { EvalResult } from '../sandbox/result.js';
import { PACKAGE_VERSION } from '../tasks/paths.js';
import type { Encoding } from './codec.js';
import type { Episode } from './episodes.js';
import { feedbackText } from './feedback.js';
import type { Msg, Observation, StepReason } from './protocol.js';
import type { Ending } from './rules.js';
import type { Session } from './sessions.js';

/** A step once admitted, as the Gym runs it. */
export interface StepRequest {
  readonly session: Session;
  readonly m: Msg<'step'>;
  readonly ep: Episode;
  readonly text: string;
  /** The request id as a key, and the fingerprint of its episode and action (for replay). */
  readonly key: string;
  readonly fingerprint: string;
  readonly abort: AbortController;
  readonly encoding: Encoding;
  /** When the step was admitted (performance.now()). */
  readonly t0: number;
}

/** One turn as it goes through the pipeline: what was asked, what evaluation found,
 * and what the stages made of it. */
export interface Turn {
  readonly m: Msg<'step'>;
  readonly ep: Episode;
  /** The reply, and the observation it answers. */
  readonly text: string;
  readonly shown: Observation;
  /** The number of this turn in its episode. */
  readonly index: number;
  /** Null where there was no evaluation (a reply too long, a cancel, a failure of the evaluator). */
  readonly result: EvalResult | null;
  /** Why the turn went as it did, where its result does not say (before the ending rules). */
  readonly reason: StepReason | null;
  /** An infrastructure failure or a cancel: the turn does not count and does not train. */
  readonly masked: boolean;
  /** When the evaluation left the queue, and when it finished, since the step was admitted. */
  readonly queuedMs: number | null;
  readonly totalMs: number;
}

const NOT_EVALUATED: RewardInput = {
  outcome: 'invalid_action',
  correct: false,
  speedup: null,
  profileShare: null,
  candidateMs: null,
  referenceMs: null,
  solMs: null,
};

/** The turn's outcome: its result's, else why it had none. */
export const outcomeOf = (turn: Turn): string => turn.result?.outcome ?? turn.reason!;

/** What the reward reads of a result: every timing shape with its own speed-of-light time;
 * the times combined by geometric mean over shapes, like the speedup. */
export function rewardInput(result: EvalResult | null): RewardInput {
  if (!result) return NOT_EVALUATED;
  const shapes = result.timing?.shapes ?? [];
  const sols = shapes.map((s) => s.solMs);
  return {
    outcome: result.outcome,
    correct: result.correct,
    speedup: result.speedup,
    profileShare: result.profileShare,
    candidateMs: result.timing?.candidateMs ?? null,
    referenceMs: result.timing?.referenceMs ?? null,
    solMs: sols.length > 0 && sols.every((x): x is number => x !== null) ? geomean(sols) : null,
    shapes: shapes.map((s) => ({
      candidateMs: s.candidate.medianMs,
      referenceMs: s.reference.medianMs,
      solMs: s.solMs,
    })),
  };
}

export function rewardOf(turn: Turn, cfg: RewardConfig): Reward {
  return turn.masked ? { total: 0, components: {}, mask: true } : computeReward(rewardInput(turn.result), cfg);
}

/** What the model is told: the evaluation's feedback, or why there was none. */
export function feedbackOf(turn: Turn, turnsLeft: number, maxActionChars: number): string {
  if (turn.reason === 'cancelled') return 'The evaluation was cancelled. This turn does not count.';
  if (turn.masked)
    return 'The evaluation failed for reasons unrelated to your code. This turn does not count; you may submit again.';
  if (turn.result) return feedbackText(turn.result, turnsLeft);
  return `Result: the reply is longer than ${maxActionChars} characters and was not evaluated.${turnsLeft > 0 ? ` You have ${turnsLeft} more turns.` : ''}`;
}

/** The evaluation as the answer's info and the record carry it. */
export function evalSummary(result: EvalResult | null) {
  if (!result) return null;
  return {
    outcome: result.outcome,
    correct: result.correct,
    speedup: result.speedup,
    profileShare: result.profileShare,
    flags: result.flags,
    message: result.message,
    stages: result.stages.map((s) => ({ name: s.name, status: s.status, ms: tenth(s.ms) })),
    cached: result.cached,
    codeHash: result.codeHash,
    sandbox: result.env.sandbox,
  };
}

/** Who ran the turn: the run, the server and the session. */
export interface RecordContext {
  run: string;
  session: string;
}

/** The per-turn record, written to the log before the answer leaves. */
export function turnRecord(
  turn: Turn,
  ctx: RecordContext,
  reward: Reward,
  feedback: string,
  ending: Ending,
): TurnRecord {
  const { ep, m, result } = turn;
  return {
    run: ctx.run,
    time: new Date().toISOString(),
    serverVersion: PACKAGE_VERSION,
    session: ctx.session,
    episode: ep.id,
    group: ep.groupId,
    index: ep.index,
    taskset: ep.taskset,
    task: ep.task.id,
    taskVersion: ep.task.version,
    taskDigest: ep.task.digest,
    seed: ep.seed,
    turn: turn.index,
    observation: turn.shown,
    action: turn.text,
    feedback,
    meta: m.meta ?? null,
    completionIds: m.completionIds ?? null,
    logprobs: m.logprobs ?? null,
    policyVersion: m.policyVersion === undefined ? null : String(m.policyVersion),
    eval: evalSummary(result),
    reward: reward.total,
    components: reward.components,
    rewardConfig: ep.reward,
    terminated: ending.terminated,
    truncated: ending.truncated,
    reason: ending.reason,
    mask: turn.masked,
    timings: {
      queuedMs: turn.queuedMs ?? 0,
      totalMs: tenth(turn.totalMs),
      stages: Object.fromEntries(
        (result?.stages ?? []).filter((s) => s.status !== 'skipped').map((s) => [s.name, tenth(s.ms)]),
      ),
    },
  };
}

/** The step's answer: the next observation, the reward, how the episode stands. */
export function stepAnswer(turn: Turn, record: TurnRecord, observation: Observation) {
  return {
    id: turn.m.id,
    ok: true,
    event: 'result',
    episode: turn.ep.id,
    observation,
    reward: record.reward,
    terminated: record.terminated,
    truncated: record.truncated,
    ...(record.reason ? { reason: record.reason } : {}),
    info: {
      turn: turn.index,
      mask: turn.masked,
      outcome: outcomeOf(turn),
      task: turn.ep.task.id,
      taskVersion: turn.ep.task.version,
      components: record.components,
      eval: record.eval,
    },
  };
}

const tenth = (ms: number) => Math.round(ms * 10) / 10;

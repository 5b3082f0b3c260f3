/** The rules around a step, each a layer of its own (as Gymnasium keeps time
 * limits and ordering in wrappers, not in the environment): replay answers a
 * retried request without evaluating it again, backpressure refuses what the
 * server cannot take now, and the ending rules (solved, turn limit) decide
 * whether a counted turn ends its episode. */
import type { EvalResult } from '../sandbox/result.js';
import { ProtocolError } from './errors.js';
import type { StepReason } from './protocol.js';
import type { ReplayStore, Session } from './sessions.js';

/** How a counted turn leaves its episode. */
export interface Ending {
  terminated: boolean;
  truncated: boolean;
  /** Why the episode ended, or why the turn went as it did (invalid_action); null otherwise. */
  reason: StepReason | null;
}

/** What the ending rules look at. */
export interface Ended {
  result: EvalResult | null;
  /** Turns the episode has left after this one. */
  turnsLeft: number;
}

/** A rule sees the turn and the ending so far, and may end the episode. */
export type EndingRule = (turn: Ended, so: Ending) => Ending;

/** Solved: a correct result at or past the task set's solved speedup terminates the episode. */
export const solvedRule =
  (solvedSpeedup: number | undefined): EndingRule =>
  (turn, so) =>
    turn.result?.outcome === 'ok' && solvedSpeedup !== undefined && (turn.result.speedup ?? 0) >= solvedSpeedup
      ? { ...so, terminated: true, reason: 'solved' }
      : so;

/** Turn limit: the last turn a not yet terminated episode has truncates it, keeping an earlier reason. */
export const turnLimitRule: EndingRule = (turn, so) =>
  so.terminated || turn.turnsLeft > 0 ? so : { ...so, truncated: true, reason: so.reason ?? 'max_turns' };

/** The ending of a counted turn: the rules in order, from a turn that ends nothing. */
export function endingOf(turn: Ended, reason: StepReason | null, rules: readonly EndingRule[]): Ending {
  return rules.reduce((so, rule) => rule(turn, so), { terminated: false, truncated: false, reason } as Ending);
}

/** Replay: a retried request (same id, same episode and action) is never evaluated twice.
 * 'running': its first copy is still in flight and will answer; an answer: send it again;
 * null: a new request. An answer no longer kept is `replay_expired`, never a second evaluation.
 * An id the session already used for another step (in flight, answered, or expired) is
 * refused: taken, its answer would replace the first one's, and a retry of the first would
 * then be evaluated again. */
export function replayOf(
  session: Session,
  replay: ReplayStore,
  key: string,
  fingerprint: string,
  bounds: { replayBytes: number; replayMaxAgeMs: number },
): 'running' | { answer: unknown } | null {
  const earlier =
    session.inflight.get(key)?.fingerprint ?? replay.fingerprintOf(session, key) ?? session.expired.get(key);
  if (earlier !== undefined && earlier !== fingerprint)
    throw new ProtocolError(
      'invalid_message',
      `request id ${key} was used for another step of this session (another episode or action); a step needs an id of its own`,
    );
  if (session.inflight.has(key)) return 'running';
  const answer = replay.replayFor(session, key, fingerprint);
  if (answer !== undefined) return { answer };
  if (session.expired.has(key))
    throw new ProtocolError(
      'replay_expired',
      `step ${key} was answered before and its answer is no longer kept (bounds: ${bounds.replayBytes} bytes, ${bounds.replayMaxAgeMs} ms); it is not evaluated again`,
    );
  return null;
}

/** What backpressure looks at: the turn log's disk, and whether evaluation takes work. */
export interface Pressure {
  log: { readonly full: boolean; readonly fullSince: { code: string } | null };
  evaluator: { available(): boolean; readonly poolSize: number };
  metrics: { busy: { inc(): void }; logRefused: { inc(): void }; queueDepth: { set(n: number): void } };
}

/** Backpressure: steps are refused, with a typed error and a retry hint, while the log's disk
 * is full, while evaluation is unreachable, and past the limit of pending steps. */
export class Backpressure {
  private pending = 0;
  /** Recent step durations, for the retry hint of `busy`. */
  private avgStepMs = 2000;

  constructor(
    private readonly limits: { maxPendingSteps: number; logProbeMs: number },
    private readonly p: Pressure,
  ) {}

  get pendingSteps(): number {
    return this.pending;
  }

  /** Throws the refusal a step gets now, if any. */
  admit(): void {
    const { log, evaluator, metrics } = this.p;
    if (log.full) {
      metrics.logRefused.inc();
      throw new ProtocolError(
        'storage_full',
        `the turn log's disk is full (${log.fullSince!.code}); steps resume by themselves once there is space`,
        this.limits.logProbeMs,
      );
    }
    if (!evaluator.available()) {
      metrics.busy.inc();
      throw new ProtocolError('busy', 'the evaluation queue is unreachable; retry shortly', 1000);
    }
    this.admitPending();
  }

  /** Only the limit of pending steps: a one-shot evaluation (POST /v1/evaluate) writes no log. */
  admitPending(): void {
    const { evaluator, metrics } = this.p;
    const max = this.limits.maxPendingSteps;
    if (this.pending >= max) {
      metrics.busy.inc();
      const retryAfterMs = Math.ceil((this.avgStepMs * (this.pending - max + 1)) / evaluator.poolSize) + 100;
      throw new ProtocolError('busy', `${this.pending} steps are pending, the limit is ${max}`, retryAfterMs);
    }
  }

  /** A step was admitted; its position in the queue. */
  begin(): number {
    this.pending++;
    this.p.metrics.queueDepth.set(this.pending);
    return this.pending - 1;
  }

  /** A step's evaluation took this long (it tunes the retry hint). */
  took(ms: number): void {
    this.avgStepMs = 0.9 * this.avgStepMs + 0.1 * ms;
  }

  /** A step was answered, or failed. */
  end(): void {
    this.pending--;
    this.p.metrics.queueDepth.set(this.pending);
  }
}

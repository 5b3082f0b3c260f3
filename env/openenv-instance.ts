/** One OpenEnv environment instance over the Gym: a session holding at most one current
 * episode, with OpenEnv's shapes for reset, step and state. The front door (openenv.ts)
 * makes one per WebSocket connection or per HTTP /reset. */
import type { z } from 'zod';
import type { ChatMessage } from '../contracts/record.js';
import { ProtocolError } from './errors.js';
import type { Gym } from './gym.js';
import { DoorError, KernelActionSchema, KernelStateSchema, OpenEnvResetSchema, parse } from './openenv-schemas.js';
import type { RequestId } from './protocol.js';
import type { Session, Sink } from './sessions.js';

type StepAnswer = {
  ok: true;
  event: 'result';
  observation: { messages: ChatMessage[] };
  reward: number;
  terminated: boolean;
  truncated: boolean;
  reason?: string;
  info: { turn: number; mask: boolean; outcome: string } & Record<string, unknown>;
};
type Answer =
  StepAnswer | { ok: false; error: { code: string; message: string; retryable: boolean; retryAfterMs?: number } };

/** Routes a session's answers to the requests waiting for them. */
export class Waiters implements Sink {
  private readonly waiting = new Map<string, Array<(a: Answer) => void>>();
  constructor(private readonly onClose: (code: number, reason: string) => void = () => {}) {}
  wait(id: RequestId): Promise<Answer> {
    const key = JSON.stringify(id);
    return new Promise((resolve) => {
      const list = this.waiting.get(key) ?? [];
      list.push(resolve);
      this.waiting.set(key, list);
    });
  }
  forget(id: RequestId): void {
    this.waiting.delete(JSON.stringify(id));
  }
  send(value: unknown): void {
    const v = value as { id: RequestId; event?: string } & Answer;
    if (v.event === 'progress') return;
    const key = JSON.stringify(v.id);
    const list = this.waiting.get(key);
    this.waiting.delete(key);
    for (const resolve of list ?? []) resolve(v);
  }
  close(code: number, reason: string): void {
    this.onClose(code, reason);
  }
}

/** One OpenEnv environment instance: a Gym session holding at most one current episode. */
export class Instance {
  episode: string | null = null;
  private nextId = 0;
  constructor(
    private readonly gym: Gym,
    readonly session: Session,
    readonly waiters: Waiters,
  ) {}

  reset(data: unknown) {
    const d = parse(OpenEnvResetSchema, data ?? {}, 'reset');
    // One episode at a time, as an OpenEnv environment: a reset drops the current one.
    if (this.episode && this.gym.episodes.has(this.episode))
      this.gym.close(this.session, { id: 0, op: 'close', episode: this.episode });
    this.episode = null;
    const out = this.gym.reset(this.session, {
      id: 0,
      op: 'reset',
      task: d.task,
      taskset: d.taskset,
      split: d.split,
      seed: d.seed,
      group: d.group_id ? { id: d.group_id } : undefined,
      options: d.options,
    }).episodes[0]!;
    this.episode = out.episode;
    return {
      observation: {
        messages: out.observation.messages,
        episode_id: out.episode,
        group_id: out.group,
        index: out.index,
        task: out.info.task,
        turn: 0,
        terminated: false,
        truncated: false,
        reason: null,
        info: out.info,
      },
      reward: null,
      done: false,
    };
  }

  async step(data: unknown, requestId?: string) {
    const a = parse(KernelActionSchema, data, 'action');
    if (!this.episode) throw new DoorError('SESSION_ERROR', 'no episode: send reset first');
    const episode = this.episode;
    const id = requestId ?? `openenv-${++this.nextId}`;
    const answer = this.waiters.wait(id);
    try {
      this.gym.step(
        this.session,
        {
          id,
          op: 'step',
          episode,
          action: a.message,
          meta: a.metadata,
          completionIds: a.completion_ids,
          logprobs: a.logprobs,
          policyVersion: a.policy_version,
        },
        'json',
      );
    } catch (e) {
      this.waiters.forget(id);
      throw e;
    }
    const r = await answer;
    if (!r.ok) throw new ProtocolError(r.error.code as ProtocolError['code'], r.error.message, r.error.retryAfterMs);
    if (r.info.mask)
      // Not a model failure: no reward, the turn is not counted, the episode is ready for the same action again.
      throw new DoorError('ENV_ERROR', r.observation.messages[0]?.content ?? 'the evaluation failed', {
        retryable: true,
        masked: true,
        reason: r.reason ?? r.info.outcome,
        turn: r.info.turn,
      });
    const s = this.gym.state(this.session, { id: 0, op: 'state', episode });
    return {
      observation: {
        messages: r.observation.messages,
        episode_id: episode,
        group_id: s.group,
        index: s.index,
        task: s.task,
        turn: s.turns.length,
        terminated: r.terminated,
        truncated: r.truncated,
        reason: r.reason ?? null,
        info: r.info,
      },
      reward: r.reward,
      done: r.terminated || r.truncated,
    };
  }

  state(): z.infer<typeof KernelStateSchema> {
    if (!this.episode || !this.gym.episodes.has(this.episode))
      return {
        episode_id: null,
        step_count: 0,
        group_id: null,
        index: null,
        task: null,
        seed: null,
        state: 'none',
        max_turns: null,
        end_reason: null,
      };
    const s = this.gym.state(this.session, { id: 0, op: 'state', episode: this.episode });
    return {
      episode_id: s.episode,
      step_count: s.turns.length,
      group_id: s.group,
      index: s.index,
      task: s.task,
      seed: s.seed,
      state: s.state,
      max_turns: s.maxTurns,
      end_reason: s.endReason,
    };
  }
}

/** The environment behind the protocol: sessions, episodes and steps. Each op
 * handler takes a typed message and answers through its session; transport,
 * decoding and HTTP live in server.ts. */
import { createHash, randomInt, randomUUID } from 'node:crypto';
import os from 'node:os';
import { computeReward } from '../rewards/reward.js';
import type { TurnSummary } from '../records/stats.js';
import { rewardConfig, type RewardConfig } from '../rewards/config.js';
import { AnvilError } from '../sandbox/errors.js';
import type { EvaluationService } from '../sandbox/evaluator.js';
import type { EvalResult } from '../sandbox/result.js';
import type { TaskSet } from '../tasks/loader.js';
import { PACKAGE_VERSION } from '../tasks/paths.js';
import type { Encoding } from './codec.js';
import type { ServerConfig } from './config.js';
import { Episode, firstObservation, ownCopy, sampleTask } from './episodes.js';
import { ProtocolError } from './errors.js';
import { feedbackText } from './feedback.js';
import { LogFullError, type TurnLog } from './log.js';
import type { Metrics } from './metrics.js';
import type { ChatMessage, Msg, Observation, RequestId, StepReason } from './protocol.js';
import { ReplayStore, SessionRegistry, type Session } from './sessions.js';
import { OnePerTurn } from './turns.js';

const keyOf = (id: RequestId) => JSON.stringify(id);

/** Turns kept in memory for the dashboard, and how much of each reply. */
const RECENT_TURNS = 2000;
const RECENT_ACTION_CHARS = 64 * 1024;
/** Replies longer than this are extracted one per event-loop turn. */
const LARGE_REPLY_CHARS = 16 * 1024;

export class Gym {
  readonly sessions: SessionRegistry;
  readonly episodes = new Map<string, Episode>();
  /** Finished episodes still kept for `state`, oldest first; past the bound they are freed. */
  private readonly finished = new Map<string, Episode>();
  readonly runId = `run-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`;
  private pending = 0;
  /** The latest turn records, oldest first, for the dashboard. */
  readonly recent: TurnSummary[] = [];
  private readonly cores = os.availableParallelism();
  /** Pieces of work of a few ms each, one per event-loop turn (shared with the server's frame decoding). */
  readonly heavy = new OnePerTurn();
  /** Recent step durations, for the retry hint of `busy`. */
  private avgStepMs = 2000;

  constructor(
    private readonly config: ServerConfig,
    private readonly tasksets: Map<string, TaskSet>,
    private readonly evaluator: EvaluationService,
    private readonly log: TurnLog,
    private readonly metrics: Metrics,
  ) {
    this.sessions = new SessionRegistry(config.resumeGraceMs, new ReplayStore(config.replayBytes, config.replayMaxAgeMs), (s) => this.expireSession(s));
  }

  /** Episodes not yet finished, over all sessions. */
  get openEpisodes(): number {
    return this.episodes.size - this.finished.size;
  }

  get pendingSteps(): number {
    return this.pending;
  }

  taskset(id?: string): TaskSet {
    const set = this.tasksets.get(id ?? this.config.taskset);
    if (!set) throw new ProtocolError('unknown_taskset', `no task set "${id}"; served: ${[...this.tasksets.keys()].join(', ')}`);
    return set;
  }

  hello(session: Session) {
    return {
      session: session.id,
      resumeToken: session.resumeToken,
      version: PACKAGE_VERSION,
      protocol: 1,
      backends: ['c'],
      tasksets: [...this.tasksets.keys()],
      limits: {
        maxFrameBytes: this.config.maxFrameBytes,
        maxGroupSize: this.config.maxGroupSize,
        maxTurns: this.config.maxTurnsLimit,
        maxPendingSteps: this.config.maxPendingSteps,
        maxEpisodesPerSession: this.config.maxEpisodesPerSession,
        maxActionChars: this.config.maxActionChars,
        resumeGraceMs: this.config.resumeGraceMs,
      },
    };
  }

  tasks(m: Msg<'tasks'>) {
    const set = this.taskset(m.taskset);
    const tasks = [...set.tasks.values()]
      .filter((t) => !m.split || t.split === m.split)
      .map((t) => ({
        id: t.id,
        title: t.title,
        backend: t.backend,
        split: t.split,
        tags: t.tags,
        signature: t.backend === 'c' ? t.signature : 'class ModelNew(nn.Module)',
        shapes: t.backend === 'c' ? t.correctness.filter((c) => c.visible).map((c) => c.params) : [],
        version: t.version,
      }));
    return { taskset: set.manifest.id, tasks };
  }

  reset(session: Session, m: Msg<'reset'>) {
    const set = this.taskset(m.taskset);
    const size = m.group?.size ?? 1;
    if (size > this.config.maxGroupSize) throw new ProtocolError('invalid_message', `group size ${size} exceeds the limit ${this.config.maxGroupSize}`);
    if (this.openEpisodes + size > this.config.maxEpisodes) {
      this.metrics.busy.inc();
      throw new ProtocolError('busy', `the server holds its limit of ${this.config.maxEpisodes} open episodes; close some`, 1000);
    }
    if (session.openEpisodes + size > this.config.maxEpisodesPerSession) {
      this.metrics.busy.inc();
      throw new ProtocolError('busy', `this session holds its limit of ${this.config.maxEpisodesPerSession} open episodes; finish or close some`, 1000);
    }
    const maxTurns = m.options?.maxTurns ?? set.manifest.maxTurns;
    if (maxTurns > this.config.maxTurnsLimit) throw new ProtocolError('invalid_message', `maxTurns ${maxTurns} exceeds the limit ${this.config.maxTurnsLimit}`);
    const seed = m.seed ?? randomInt(0, 2 ** 31);
    let task;
    if (m.task) {
      task = set.tasks.get(m.task);
      if (!task) throw new ProtocolError('unknown_task', `no task "${m.task}" in ${set.manifest.id}`);
    } else task = sampleTask(set, m.split ?? 'train', seed);
    let reward: RewardConfig;
    try {
      reward = rewardConfig(set.manifest.reward as Partial<RewardConfig>, m.options?.reward);
    } catch (e) {
      throw new ProtocolError('invalid_message', `reward options: ${(e as Error).message.slice(0, 300)}`);
    }
    const groupId = m.group?.id ?? randomUUID();
    const obs = firstObservation(task, this.cores);
    const out = [];
    for (let index = 0; index < size; index++) {
      const ep = new Episode(session.id, task, set.manifest.id, seed, groupId, index, maxTurns, reward, obs);
      this.episodes.set(ep.id, ep);
      session.episodes.add(ep.id);
      session.openEpisodes++;
      out.push({
        episode: ep.id,
        group: groupId,
        index,
        observation: obs,
        info: { task: task.id, taskVersion: task.version, taskset: set.manifest.id, split: task.split, seed, maxTurns },
      });
    }
    this.metrics.episodes.set(this.openEpisodes);
    return { episodes: out };
  }

  private episodeOf(session: Session, id: string): Episode {
    const ep = this.episodes.get(id);
    if (!ep || ep.sessionId !== session.id) throw new ProtocolError('unknown_episode', `no episode "${id}" in this session`);
    return ep;
  }

  state(session: Session, m: Msg<'state'>) {
    const ep = this.episodeOf(session, m.episode);
    return {
      episode: ep.id,
      group: ep.groupId,
      index: ep.index,
      task: ep.task.id,
      seed: ep.seed,
      state: ep.state,
      maxTurns: ep.maxTurns,
      turns: ep.turns,
      endReason: ep.endReason,
      observation: ep.lastObservation,
    };
  }

  close(session: Session, m: Msg<'close'>) {
    const ep = this.episodeOf(session, m.episode);
    for (const f of session.inflight.values()) if (f.episode === ep.id) f.abort.abort();
    this.dropEpisode(session, ep);
    return { closed: ep.id };
  }

  private dropEpisode(session: Session, ep: Episode): void {
    if (!this.episodes.delete(ep.id)) return;
    session.episodes.delete(ep.id);
    if (!this.finished.delete(ep.id)) session.openEpisodes--;
    this.metrics.episodes.set(this.openEpisodes);
  }

  /** An episode ended: it no longer counts against quotas, and is freed once
   * more recent finished episodes push it out. */
  private episodeFinished(session: Session, ep: Episode): void {
    session.openEpisodes--;
    this.finished.set(ep.id, ep);
    while (this.finished.size > this.config.finishedEpisodesKept) {
      const [id, old] = this.finished.entries().next().value!;
      this.finished.delete(id);
      this.episodes.delete(id);
      this.sessions.get(old.sessionId)?.episodes.delete(id);
    }
    this.metrics.episodes.set(this.openEpisodes);
  }

  cancel(session: Session, m: Msg<'cancel'>) {
    const f = session.inflight.get(keyOf(m.target));
    if (!f) throw new ProtocolError('unknown_step', `no step with id ${JSON.stringify(m.target)} is in flight`);
    f.abort.abort();
    return { cancelled: m.target };
  }

  /** Starts a step; progress and the result reach the session as they come. */
  step(session: Session, m: Msg<'step'>, encoding: Encoding): void {
    const key = keyOf(m.id);
    const text = typeof m.action === 'string' ? m.action : m.action.content;
    const fingerprint = createHash('sha256').update(m.episode).update('\0').update(text).digest('hex');
    // A retry of a step this session already has: never evaluated twice.
    const inflight = session.inflight.get(key);
    if (inflight?.fingerprint === fingerprint) return;
    const earlier = this.sessions.replay.replayFor(session, key, fingerprint);
    if (earlier !== undefined) return session.deliver(earlier, encoding);
    if (session.expired.get(key) === fingerprint)
      throw new ProtocolError(
        'replay_expired',
        `step ${key} was answered before and its answer is no longer kept (bounds: ${this.config.replayBytes} bytes, ${this.config.replayMaxAgeMs} ms); it is not evaluated again`,
      );

    const ep = this.episodeOf(session, m.episode);
    if (ep.state === 'done') throw new ProtocolError('episode_done', `episode ${ep.id} has ended (${ep.endReason})`);
    if (ep.state === 'stepping') throw new ProtocolError('step_in_flight', `episode ${ep.id} has a step in flight`);
    const meta = m.meta === undefined ? undefined : m.meta;
    if (meta !== undefined && Buffer.byteLength(JSON.stringify(meta) ?? '') > this.config.maxMetaBytes)
      throw new ProtocolError('too_large', `meta exceeds ${this.config.maxMetaBytes} bytes`);
    if (this.log.full) {
      this.metrics.logRefused.inc();
      throw new ProtocolError('storage_full', `the turn log's disk is full (${this.log.fullSince!.code}); steps resume by themselves once there is space`, this.config.logProbeMs);
    }
    if (!this.evaluator.available()) {
      this.metrics.busy.inc();
      throw new ProtocolError('busy', 'the evaluation queue is unreachable; retry shortly', 1000);
    }
    if (this.pending >= this.config.maxPendingSteps) {
      this.metrics.busy.inc();
      const retryAfterMs = Math.ceil((this.avgStepMs * (this.pending - this.config.maxPendingSteps + 1)) / this.evaluator.poolSize) + 100;
      throw new ProtocolError('busy', `${this.pending} steps are pending, the limit is ${this.config.maxPendingSteps}`, retryAfterMs);
    }
    ep.beginStep();
    const abort = new AbortController();
    session.inflight.set(key, { fingerprint, episode: ep.id, abort });
    this.pending++;
    this.metrics.queueDepth.set(this.pending);
    const queuePosition = this.pending - 1;
    const t0 = performance.now();
    session.deliver({ id: m.id, ok: true, event: 'progress', episode: ep.id, stage: 'queued', queuePosition }, encoding, false);
    void this.runStep(session, m, ep, text, meta, abort, encoding, t0)
      .catch((e) => {
        // Never a detached rejection: the step is answered, not counted, and the server goes on.
        if (e instanceof LogFullError) this.metrics.logRefused.inc();
        else console.error(`step ${key} on ${ep.id}: ${(e as Error).stack ?? e}`);
        ep.abandonStep();
        const err = e instanceof LogFullError ? new ProtocolError('storage_full', `${e.message}; this step was not counted, send it again once there is space`, this.config.logProbeMs) : new ProtocolError('internal', 'internal error');
        this.metrics.errors.inc({ code: err.code });
        session.deliver({ id: m.id, ok: false, error: err.toWire() }, encoding);
      })
      .finally(() => {
      this.pending--;
      this.metrics.queueDepth.set(this.pending);
      session.inflight.delete(key);
    });
  }

  private async runStep(
    session: Session,
    m: Msg<'step'>,
    ep: Episode,
    text: string,
    meta: unknown,
    abort: AbortController,
    encoding: Encoding,
    t0: number,
  ): Promise<void> {
    const key = keyOf(m.id);
    const fingerprint = session.inflight.get(key)!.fingerprint;
    const shown = ep.lastObservation;
    let result: EvalResult | null = null;
    let reason: StepReason | null = null;
    let startedMs: number | null = null;
    if (text.length > this.config.maxActionChars) reason = 'invalid_action';
    else {
      // Extraction and the cache lookup run on this thread (linear, but a few ms for a
      // large reply): one step's at a time per turn of the event loop.
      if (text.length > LARGE_REPLY_CHARS) await this.heavy.turn();
      try {
        result = await this.evaluator.evaluate(
          { task: ep.task, reply: text, seed: ep.seed },
          {
            signal: abort.signal,
            onProgress: (stage) => {
              if (stage === 'queued') return;
              startedMs ??= performance.now() - t0;
              session.deliver({ id: m.id, ok: true, event: 'progress', episode: ep.id, stage }, encoding, false);
            },
          },
        );
      } catch (e) {
        if (e instanceof AnvilError && e.code === 'cancelled') reason = 'cancelled';
        else {
          console.error(`step ${key} on ${ep.id}: ${(e as Error).stack ?? e}`);
          reason = 'env_error';
        }
      }
    }
    if (result?.outcome === 'env_error') reason = 'env_error';
    const totalMs = performance.now() - t0;
    this.avgStepMs = 0.9 * this.avgStepMs + 0.1 * totalMs;
    this.metrics.stepSeconds.observe(totalMs / 1000);
    for (const s of result?.stages ?? []) if (s.status !== 'skipped') this.metrics.stageSeconds.observe({ stage: s.name }, s.ms / 1000);

    const masked = reason === 'env_error' || reason === 'cancelled';
    const reward = masked
      ? { total: 0, components: {}, mask: true }
      : computeReward(
          result
            ? {
                outcome: result.outcome,
                correct: result.correct,
                speedup: result.speedup,
                profileShare: result.profileShare,
                candidateMs: result.timing?.candidateMs ?? null,
                referenceMs: result.timing?.referenceMs ?? null,
                solMs: result.timing?.shapes[0]?.solMs ?? null,
              }
            : { outcome: 'invalid_action', correct: false, speedup: null, profileShare: null, candidateMs: null, referenceMs: null, solMs: null },
          ep.reward,
        );
    const outcome = result?.outcome ?? reason!;
    this.metrics.steps.inc({ outcome });

    let feedback: string;
    let terminated = false;
    let truncated = false;
    if (masked) {
      feedback =
        reason === 'cancelled'
          ? 'The evaluation was cancelled. This turn does not count.'
          : 'The evaluation failed for reasons unrelated to your code. This turn does not count; you may submit again.';
      ep.abandonStep();
    } else {
      const turnsLeft = ep.turnsLeft - 1;
      feedback = result
        ? feedbackText(result, turnsLeft)
        : `Result: the reply is longer than ${this.config.maxActionChars} characters and was not evaluated.${turnsLeft > 0 ? ` You have ${turnsLeft} more turns.` : ''}`;
      const solvedAt = this.taskset(ep.taskset).manifest.solvedSpeedup;
      if (result?.outcome === 'ok' && solvedAt !== undefined && (result.speedup ?? 0) >= solvedAt) {
        terminated = true;
        reason = 'solved';
      } else if (turnsLeft <= 0) {
        truncated = true;
        reason = reason ?? 'max_turns';
      }
    }
    const messages: ChatMessage[] = [{ role: 'user', content: feedback }];
    const observation: Observation = { messages };
    // The turn is counted only once its record is on disk (a full disk throws before).
    const turn = ep.turns.length;
    const evalSummary = result
      ? {
          outcome: result.outcome,
          correct: result.correct,
          speedup: result.speedup,
          profileShare: result.profileShare,
          flags: result.flags,
          message: result.message,
          stages: result.stages.map((s) => ({ name: s.name, status: s.status, ms: Math.round(s.ms * 10) / 10 })),
          cached: result.cached,
          codeHash: result.codeHash,
          sandbox: result.env.sandbox,
        }
      : null;
    const info = {
      turn,
      mask: masked,
      outcome,
      task: ep.task.id,
      taskVersion: ep.task.version,
      components: reward.components,
      eval: evalSummary,
    };
    // The record is on disk before the answer leaves.
    const record = {
      run: this.runId,
      time: new Date().toISOString(),
      serverVersion: PACKAGE_VERSION,
      session: session.id,
      episode: ep.id,
      group: ep.groupId,
      index: ep.index,
      taskset: ep.taskset,
      task: ep.task.id,
      taskVersion: ep.task.version,
      taskDigest: ep.task.digest,
      seed: ep.seed,
      turn,
      observation: shown,
      action: text,
      feedback,
      meta: meta ?? null,
      completionIds: m.completionIds ?? null,
      logprobs: m.logprobs ?? null,
      policyVersion: m.policyVersion === undefined ? null : String(m.policyVersion),
      eval: evalSummary,
      reward: reward.total,
      components: reward.components,
      rewardConfig: ep.reward,
      terminated,
      truncated,
      reason,
      mask: masked,
      timings: {
        queuedMs: startedMs ?? 0,
        totalMs: Math.round(totalMs * 10) / 10,
        stages: Object.fromEntries((result?.stages ?? []).filter((s) => s.status !== 'skipped').map((s) => [s.name, Math.round(s.ms * 10) / 10])),
      },
    };
    this.log.append(record);
    if (!masked) {
      ep.finishStep(
        { action: text, outcome, reward: reward.total, components: reward.components, speedup: result?.speedup ?? null, feedback, codeHash: result?.codeHash ?? '' },
        terminated || truncated ? reason : null,
        messages,
      );
      if (ep.state === 'done') this.episodeFinished(session, ep);
    }
    // The dashboard's copy is bounded: 2,000 turns of at most 64 KiB of reply each.
    this.recent.push(record.action.length > RECENT_ACTION_CHARS ? { ...record, action: `${ownCopy(record.action.slice(0, RECENT_ACTION_CHARS))}\n[… truncated]` } : record);
    if (this.recent.length > RECENT_TURNS) this.recent.shift();
    const answer = {
      id: m.id,
      ok: true,
      event: 'result',
      episode: ep.id,
      observation,
      reward: reward.total,
      terminated,
      truncated,
      ...(reason ? { reason } : {}),
      info,
    };
    this.sessions.replay.remember(session, key, fingerprint, answer, Buffer.byteLength(JSON.stringify(answer)));
    session.deliver(answer, encoding);
  }

  /** A session's grace ran out: its episodes and steps go. */
  private expireSession(s: Session): void {
    for (const f of s.inflight.values()) f.abort.abort();
    for (const id of s.episodes) {
      const ep = this.episodes.get(id);
      if (ep) this.dropEpisode(s, ep);
    }
    this.metrics.sessions.set(this.sessions.size);
  }
}

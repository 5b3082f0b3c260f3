/** The environment behind the protocol: sessions, episodes and steps. Each op
 * handler takes a typed message and answers through its session; transport,
 * decoding and HTTP live in server.ts. */
import { createHash, randomInt, randomUUID } from 'node:crypto';
import os from 'node:os';
import type { TurnRecord } from '../contracts/record.js';
import { rewardConfig, type RewardConfig } from '../rewards/config.js';
import { AnvilError } from '../sandbox/errors.js';
import type { EvaluationService, ProgressStage } from '../sandbox/evaluator.js';
import type { EvalResult } from '../sandbox/result.js';
import type { TaskSet } from '../tasks/loader.js';
import { PACKAGE_VERSION } from '../tasks/paths.js';
import type { Encoding } from './codec.js';
import type { ServerConfig } from './config.js';
import { Episode, firstObservation, ownCopy, sampleTask, SHORT_ACTION_CHARS, TURN_ACTION_CHARS } from './episodes.js';
import { ProtocolError } from './errors.js';
import { LogFullError, type TurnLog } from './log.js';
import type { Metrics } from './metrics.js';
import type { ChatMessage, Msg, RequestId, StepReason } from './protocol.js';
import { Backpressure, endingOf, replayOf, solvedRule, turnLimitRule, type EndingRule } from './rules.js';
import { ReplayStore, SessionRegistry, type Session } from './sessions.js';
import { feedbackOf, outcomeOf, rewardOf, stepAnswer, turnRecord, type StepRequest, type Turn } from './step.js';
import { OnePerTurn } from './turns.js';

const keyOf = (id: RequestId) => JSON.stringify(id);

/** Turns kept in memory for the dashboard, and how much of each reply. */
const RECENT_TURNS = 2000;
const RECENT_ACTION_CHARS = 64 * 1024;
/** Replies longer than this are extracted one per event-loop turn. */
const LARGE_REPLY_CHARS = 16 * 1024;

/** The task a reset names, or unknown_task. */
function taskNamed(set: TaskSet, id: string) {
  const task = set.tasks.get(id);
  if (!task) throw new ProtocolError('unknown_task', `no task "${id}" in ${set.manifest.id}`);
  return task;
}

export class Gym {
  readonly sessions: SessionRegistry;
  readonly episodes = new Map<string, Episode>();
  /** Characters of turn actions the episodes held keep, over all of them (see keptActionChars). */
  private keptChars = 0;
  /** Finished episodes still kept for `state`, oldest first; past the bound they are freed. */
  private readonly finished = new Map<string, Episode>();
  readonly runId = `run-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`;
  /** The latest turn records, oldest first, for the dashboard. */
  readonly recent: TurnRecord[] = [];
  private readonly cores = os.availableParallelism();
  /** Pieces of work of a few ms each, one per event-loop turn (shared with the server's frame decoding). */
  readonly heavy = new OnePerTurn();
  /** The backends of the task sets served, as hello advertises them. */
  readonly backends: ('c' | 'torch')[];
  /** Refuses steps while the log's disk is full, evaluation is unreachable, or too many are pending. */
  private readonly backpressure: Backpressure;

  constructor(
    private readonly config: ServerConfig,
    private readonly tasksets: Map<string, TaskSet>,
    private readonly evaluator: EvaluationService,
    private readonly log: TurnLog,
    private readonly metrics: Metrics,
  ) {
    this.sessions = new SessionRegistry(
      config.resumeGraceMs,
      new ReplayStore(config.replayBytes, config.replayMaxAgeMs),
      (s) => this.expireSession(s),
    );
    this.backpressure = new Backpressure(config, { log, evaluator, metrics });
    this.backends = [...new Set([...tasksets.values()].map((s) => s.manifest.backend))];
  }

  /** Episodes not yet finished, over all sessions. */
  get openEpisodes(): number {
    return this.episodes.size - this.finished.size;
  }

  get pendingSteps(): number {
    return this.backpressure.pendingSteps;
  }

  taskset(id?: string): TaskSet {
    const set = this.tasksets.get(id ?? this.config.taskset);
    if (!set)
      throw new ProtocolError(
        'unknown_taskset',
        `no task set "${id}"; served: ${[...this.tasksets.keys()].join(', ')}`,
      );
    return set;
  }

  hello(session: Session) {
    return {
      session: session.id,
      resumeToken: session.resumeToken,
      version: PACKAGE_VERSION,
      protocol: 1,
      backends: this.backends,
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
    const backend = m.options?.backend;
    if (backend !== undefined && backend !== set.manifest.backend)
      throw new ProtocolError(
        'invalid_message',
        `task set ${set.manifest.id} is of the ${set.manifest.backend} backend, not ${backend}; served: ${this.backends.join(', ')}`,
      );
    const size = m.group?.size ?? 1;
    this.admitGroup(session, size);
    const maxTurns = m.options?.maxTurns ?? set.manifest.maxTurns;
    if (maxTurns > this.config.maxTurnsLimit)
      throw new ProtocolError('invalid_message', `maxTurns ${maxTurns} exceeds the limit ${this.config.maxTurnsLimit}`);
    const seed = m.seed ?? randomInt(0, 2 ** 31);
    const task = m.task ? taskNamed(set, m.task) : sampleTask(set, m.split ?? 'train', seed);
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

  /** A group of `size` new episodes fits the group limit and both quotas of open episodes. */
  private admitGroup(session: Session, size: number): void {
    if (size > this.config.maxGroupSize)
      throw new ProtocolError('invalid_message', `group size ${size} exceeds the limit ${this.config.maxGroupSize}`);
    if (this.openEpisodes + size > this.config.maxEpisodes) {
      this.metrics.busy.inc();
      throw new ProtocolError(
        'busy',
        `the server holds its limit of ${this.config.maxEpisodes} open episodes; close some`,
        1000,
      );
    }
    if (session.openEpisodes + size > this.config.maxEpisodesPerSession) {
      this.metrics.busy.inc();
      throw new ProtocolError(
        'busy',
        `this session holds its limit of ${this.config.maxEpisodesPerSession} open episodes; finish or close some`,
        1000,
      );
    }
  }

  private episodeOf(session: Session, id: string): Episode {
    const ep = this.episodes.get(id);
    if (!ep || ep.sessionId !== session.id)
      throw new ProtocolError('unknown_episode', `no episode "${id}" in this session`);
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
    this.keptChars -= ep.keptChars;
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
      this.keptChars -= old.keptChars;
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

  /** A one-shot evaluation outside any episode counts as a pending step while it runs: past
   * the limit it is refused, as a step is, and never queues ahead of the trainers' steps. */
  async evaluateOnce<T>(run: () => Promise<T>): Promise<T> {
    this.backpressure.admitPending();
    this.backpressure.begin();
    try {
      return await run();
    } finally {
      this.backpressure.end();
    }
  }

  /** Starts a step; progress and the result reach the session as they come. */
  step(session: Session, m: Msg<'step'>, encoding: Encoding): void {
    const key = keyOf(m.id);
    const text = typeof m.action === 'string' ? m.action : m.action.content;
    const fingerprint = createHash('sha256').update(m.episode).update('\0').update(text).digest('hex');
    // A retry of a step this session already has: never evaluated twice.
    const replay = replayOf(session, this.sessions.replay, key, fingerprint, this.config);
    if (replay === 'running') return;
    if (replay) return session.deliver(replay.answer, encoding);

    const ep = this.episodeOf(session, m.episode);
    if (ep.state === 'done') throw new ProtocolError('episode_done', `episode ${ep.id} has ended (${ep.endReason})`);
    if (ep.state === 'stepping') throw new ProtocolError('step_in_flight', `episode ${ep.id} has a step in flight`);
    if (m.meta !== undefined && Buffer.byteLength(JSON.stringify(m.meta) ?? '') > this.config.maxMetaBytes)
      throw new ProtocolError('too_large', `meta exceeds ${this.config.maxMetaBytes} bytes`);
    this.backpressure.admit();
    ep.beginStep();
    const abort = new AbortController();
    session.inflight.set(key, { fingerprint, episode: ep.id, abort });
    const queuePosition = this.backpressure.begin();
    const req: StepRequest = { session, m, ep, text, key, fingerprint, abort, encoding, t0: performance.now() };
    session.deliver(
      { id: m.id, ok: true, event: 'progress', episode: ep.id, stage: 'queued', queuePosition },
      encoding,
      false,
    );
    void this.runStep(req)
      .catch((e) => this.stepFailed(req, e))
      .finally(() => {
        this.backpressure.end();
        session.inflight.delete(key);
      });
  }

  /** Never a detached rejection: the step is answered, not counted, and the server goes on. */
  private stepFailed({ session, m, ep, key, encoding }: StepRequest, e: unknown): void {
    if (e instanceof LogFullError) this.metrics.logRefused.inc();
    else console.error(`step ${key} on ${ep.id}: ${(e as Error).stack ?? e}`);
    ep.abandonStep();
    const err =
      e instanceof LogFullError
        ? new ProtocolError(
            'storage_full',
            `${e.message}; this step was not counted, send it again once there is space`,
            this.config.logProbeMs,
          )
        : new ProtocolError('internal', 'internal error');
    this.metrics.errors.inc({ code: err.code });
    session.deliver({ id: m.id, ok: false, error: err.toWire() }, encoding);
  }

  /** The pipeline: evaluate → reward input → reward → feedback → record → answer. */
  private async runStep(req: StepRequest): Promise<void> {
    const { session, ep } = req;
    const turn = await this.evaluate(req);
    const reward = rewardOf(turn, ep.reward);
    this.metrics.steps.inc({ outcome: outcomeOf(turn) });
    const turnsLeft = ep.turnsLeft - 1;
    const feedback = feedbackOf(turn, turnsLeft, this.config.maxActionChars);
    const ending = turn.masked
      ? { terminated: false, truncated: false, reason: turn.reason }
      : endingOf({ result: turn.result, turnsLeft }, turn.reason, this.endingRules(ep));
    if (turn.masked) ep.abandonStep();
    const messages: ChatMessage[] = [{ role: 'user', content: feedback }];
    // The record is on disk before the answer leaves, and the turn counts only once it is
    // (a full disk throws before).
    const record = turnRecord(turn, { run: this.runId, session: session.id }, reward, feedback, ending);
    this.log.append(record);
    if (!turn.masked) this.count(session, turn, record, messages);
    this.remember(record);
    const answer = stepAnswer(turn, record, { messages });
    this.sessions.replay.remember(session, req.key, req.fingerprint, JSON.stringify(answer));
    session.deliver(answer, req.encoding);
  }

  /** Solved, then the turn limit: Gymnasium's order of termination before truncation. */
  private endingRules(ep: Episode): EndingRule[] {
    return [solvedRule(this.taskset(ep.taskset).manifest.solvedSpeedup), turnLimitRule];
  }

  /** The evaluate stage: the reply's evaluation (none for one too long), timed and observed. */
  private async evaluate(req: StepRequest): Promise<Turn> {
    const { session, m, ep, text, abort, t0 } = req;
    const shown = ep.lastObservation;
    const index = ep.turns.length;
    let result: EvalResult | null = null;
    let reason: StepReason | null = null;
    let queuedMs: number | null = null;
    if (text.length > this.config.maxActionChars) reason = 'invalid_action';
    else {
      // Extraction and the cache lookup run on this thread (linear, but a few ms for a
      // large reply): one step's at a time per turn of the event loop.
      if (text.length > LARGE_REPLY_CHARS) await this.heavy.turn();
      // A close or cancel that came in meanwhile: a cached verdict would not look at the signal.
      if (abort.signal.aborted) reason = 'cancelled';
    }
    if (reason === null) {
      const onProgress = (stage: ProgressStage) => {
        if (stage === 'queued') return;
        queuedMs ??= performance.now() - t0;
        session.deliver({ id: m.id, ok: true, event: 'progress', episode: ep.id, stage }, req.encoding, false);
      };
      try {
        result = await this.evaluator.evaluate(
          { task: ep.task, reply: text, seed: ep.seed },
          { signal: abort.signal, onProgress },
        );
      } catch (e) {
        if (e instanceof AnvilError && e.code === 'cancelled') reason = 'cancelled';
        else {
          console.error(`step ${req.key} on ${ep.id}: ${(e as Error).stack ?? e}`);
          reason = 'env_error';
        }
      }
    }
    if (result?.outcome === 'env_error') reason = 'env_error';
    const totalMs = performance.now() - t0;
    this.backpressure.took(totalMs);
    this.metrics.stepSeconds.observe(totalMs / 1000);
    for (const s of result?.stages ?? [])
      if (s.status !== 'skipped') this.metrics.stageSeconds.observe({ stage: s.name }, s.ms / 1000);
    const masked = reason === 'env_error' || reason === 'cancelled';
    return { m, ep, text, shown, index, result, reason, masked, queuedMs, totalMs };
  }

  /** A counted turn: the episode moves on, and may end. */
  private count(session: Session, turn: Turn, record: TurnRecord, messages: ChatMessage[]): void {
    const { ep, result } = turn;
    const ended = record.terminated || record.truncated ? record.reason : null;
    // An episode closed (or whose session expired) while its step ran is no longer held: it
    // counts against nothing, and freeing it twice would let its session past its quota.
    const held = this.episodes.get(ep.id) === ep;
    const before = ep.keptChars;
    ep.finishStep(
      {
        action: turn.text,
        outcome: outcomeOf(turn),
        reward: record.reward,
        components: record.components,
        speedup: result?.speedup ?? null,
        feedback: record.feedback,
        codeHash: result?.codeHash ?? '',
      },
      ended,
      messages,
      this.keptChars > this.config.keptActionChars ? SHORT_ACTION_CHARS : TURN_ACTION_CHARS,
    );
    if (!held) return;
    this.keptChars += ep.keptChars - before;
    if (ep.state === 'done') this.episodeFinished(session, ep);
  }

  /** The dashboard's copy is bounded: 2,000 turns of at most 64 KiB of reply each. */
  private remember(record: TurnRecord): void {
    this.recent.push(
      record.action.length > RECENT_ACTION_CHARS
        ? { ...record, action: `${ownCopy(record.action.slice(0, RECENT_ACTION_CHARS))}\n[… truncated]` }
        : record,
    );
    if (this.recent.length > RECENT_TURNS) this.recent.shift();
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

/** What a run looks like, from its turn records: the outcome mix over time and
 * per turn, reward and speedup distributions, hack flags, stage latencies,
 * fast_p and the best kernels. One pure function serves the live dashboard
 * and the offline report. */

import type { StoredTurnRecord } from '../contracts/record.js';

/** A turn record as read here: a log line parsed with the schema, or the server's
 * in-memory copy (a TurnRecord, which is one). */
type Turn = StoredTurnRecord;

export interface RunStats {
  steps: number;
  episodes: number;
  outcomes: Record<string, number>;
  /** Outcome counts and mean reward per time bucket. */
  timeline: { start: number; outcomes: Record<string, number>; meanReward: number | null }[];
  bucketMs: number;
  perTurn: { turn: number; outcomes: Record<string, number>; meanReward: number | null }[];
  rewardHistogram: { lo: number; hi: number; n: number }[];
  /** Speedups of correct turns, in log2-spaced bins. */
  speedupHistogram: { lo: number; hi: number; n: number }[];
  flags: Record<string, number>;
  stages: Record<string, { n: number; p50: number; p90: number; max: number }>;
  /** Share of episodes whose best correct turn is faster than p × the reference, per task set. */
  fastP: Record<string, Record<string, number>>;
  best: { task: string; speedup: number; episode: string; turn: number; code: string }[];
  slowest: { stage: string; ms: number; task: string; episode: string; turn: number }[];
  evalsPerMinute: number;
}

const outcomeOf = (r: Turn) => (r.mask ? (r.reason ?? 'env_error') : (r.eval?.outcome ?? r.reason ?? 'unknown'));

/** Stage durations in bins 1% apart (from 1 µs): quantiles within 1%, in bounded memory. */
const BIN_RATIO = Math.log(1.01);
const binOf = (ms: number) => Math.max(0, Math.floor(Math.log(Math.max(ms, 0.001) / 0.001) / BIN_RATIO));
const binValue = (bin: number) => 0.001 * Math.exp((bin + 0.5) * BIN_RATIO);

class Durations {
  n = 0;
  max = 0;
  private readonly bins = new Map<number, number>();
  add(ms: number): void {
    this.n++;
    if (ms > this.max) this.max = ms;
    const b = binOf(ms);
    this.bins.set(b, (this.bins.get(b) ?? 0) + 1);
  }
  quantile(q: number): number {
    const rank = Math.min(this.n - 1, Math.floor(q * this.n));
    let seen = 0;
    for (const b of [...this.bins.keys()].sort((x, y) => x - y)) {
      seen += this.bins.get(b)!;
      if (seen > rank) return Math.min(this.max, binValue(b));
    }
    return this.max;
  }
}

/** What the statistics need to know of a run before its records: its time span and reward range. */
export interface RunRange {
  t0: number;
  t1: number;
  rewardLo: number;
  rewardHi: number;
}

export function rangeOf(records: Iterable<Turn>): RunRange {
  const r = emptyRange();
  for (const x of records) widenRange(r, x);
  return r;
}

export function emptyRange(): RunRange {
  return { t0: Infinity, t1: -Infinity, rewardLo: 0, rewardHi: 1 };
}

export function widenRange(range: RunRange, r: Turn): void {
  const t = Date.parse(r.time);
  if (t < range.t0) range.t0 = t;
  if (t > range.t1) range.t1 = t;
  if (!r.mask) {
    if (r.reward < range.rewardLo) range.rewardLo = r.reward;
    if (r.reward > range.rewardHi) range.rewardHi = r.reward;
  }
}

/** Per-episode state kept while reading: what fastP and the episode list need. */
interface EpisodeAgg {
  taskset: string;
  task: string;
  group: string;
  episode: string;
  time: string;
  lastOutcome: string;
  turns: number;
  bestCorrect: number;
  bestSpeedup: number | null;
  totalReward: number;
}

/** Outcome counts and a reward sum: one time bucket or one turn index of a run. */
interface MixCell {
  outcomes: Record<string, number>;
  sum: number;
  n: number;
}

function mixCell<K>(cells: Map<K, MixCell>, key: K): MixCell {
  let cell = cells.get(key);
  if (!cell) cells.set(key, (cell = { outcomes: {}, sum: 0, n: 0 }));
  return cell;
}

/** The run's statistics, one record at a time: memory is bounded by the number
 * of episodes (a few numbers each), tasks and stages, never by the records. */
export class RunStatsBuilder {
  private readonly bucketMs: number;
  private readonly t0: number;
  private readonly timeline = new Map<number, MixCell>();
  private readonly perTurn = new Map<number, MixCell>();
  private readonly outcomes: Record<string, number> = {};
  /** Without a prototype: `constructor` is a flag kind, not Object's. */
  private readonly flags: Record<string, number> = Object.create(null) as Record<string, number>;
  private readonly stageMs = new Map<string, Durations>();
  private slowest: RunStats['slowest'] = [];
  readonly episodes = new Map<string, EpisodeAgg>();
  private readonly bestByTask = new Map<string, RunStats['best'][number]>();
  private readonly rewardHistogram: RunStats['rewardHistogram'];
  private readonly rewardLo: number;
  private readonly rewardWidth: number;
  private readonly speedupHistogram = Array.from({ length: 14 }, (_, k) => ({
    lo: 2 ** (k - 4),
    hi: 2 ** (k - 3),
    n: 0,
  }));
  private steps = 0;
  private lastMinute = 0;
  private readonly now: number;

  constructor(range: RunRange, opts: { buckets?: number; now?: number } = {}) {
    const empty = range.t0 > range.t1;
    this.t0 = empty ? 0 : range.t0;
    const t1 = empty ? 0 : range.t1;
    this.bucketMs = Math.max(1000, Math.ceil((t1 - this.t0 + 1) / (opts.buckets ?? 30)));
    this.now = opts.now ?? t1;
    this.rewardLo = range.rewardLo;
    this.rewardWidth = (range.rewardHi - range.rewardLo) / 20;
    this.rewardHistogram = Array.from({ length: 20 }, (_, k) => ({
      lo: range.rewardLo + k * this.rewardWidth,
      hi: range.rewardLo + (k + 1) * this.rewardWidth,
      n: 0,
    }));
  }

  add(r: Turn): void {
    this.steps++;
    const time = Date.parse(r.time);
    if (time > this.now - 60_000) this.lastMinute++;
    const o = outcomeOf(r);
    this.outcomes[o] = (this.outcomes[o] ?? 0) + 1;
    this.addToMixes(r, time, o);
    for (const f of r.eval?.flags ?? []) this.flags[f.kind] = (this.flags[f.kind] ?? 0) + 1;
    this.addStages(r);
    this.addToEpisode(r, o);
  }

  /** The outcome mix and mean reward of its time bucket and of its turn, and the reward histogram. */
  private addToMixes(r: Turn, time: number, o: string): void {
    const cell = mixCell(this.timeline, this.t0 + Math.floor((time - this.t0) / this.bucketMs) * this.bucketMs);
    const turn = mixCell(this.perTurn, r.turn);
    cell.outcomes[o] = (cell.outcomes[o] ?? 0) + 1;
    turn.outcomes[o] = (turn.outcomes[o] ?? 0) + 1;
    if (r.mask) return;
    cell.sum += r.reward;
    cell.n++;
    turn.sum += r.reward;
    turn.n++;
    this.rewardHistogram[Math.max(0, Math.min(19, Math.floor((r.reward - this.rewardLo) / this.rewardWidth)))]!.n++;
  }

  /** Stage latencies, and the ten slowest stages of the run. */
  private addStages(r: Turn): void {
    for (const s of r.eval?.stages ?? []) {
      if (s.status === 'skipped') continue;
      let d = this.stageMs.get(s.name);
      if (!d) this.stageMs.set(s.name, (d = new Durations()));
      d.add(s.ms);
      if (this.slowest.length < 10 || s.ms > this.slowest[this.slowest.length - 1]!.ms) {
        this.slowest.push({ stage: s.name, ms: s.ms, task: r.task, episode: r.episode, turn: r.turn });
        this.slowest.sort((a, b) => b.ms - a.ms);
        if (this.slowest.length > 10) this.slowest.pop();
      }
    }
  }

  /** The turn's episode moves on; a correct turn counts in the speedups and may be its task's best. */
  private addToEpisode(r: Turn, o: string): void {
    const e = this.episodeAgg(r, o);
    if (r.time >= e.time) {
      e.time = r.time;
      e.lastOutcome = o;
    }
    if (!r.mask) {
      e.turns++;
      e.totalReward += r.reward;
    }
    if (
      r.eval?.outcome === 'ok' &&
      r.eval.speedup !== null &&
      (e.bestSpeedup === null || r.eval.speedup > e.bestSpeedup)
    )
      e.bestSpeedup = r.eval.speedup;
    if (o === 'ok' && r.eval?.correct && r.eval.speedup !== null) {
      const sp = r.eval.speedup;
      this.speedupHistogram[Math.max(0, Math.min(13, Math.floor(Math.log2(sp)) + 4))]!.n++;
      if (sp > e.bestCorrect) e.bestCorrect = sp;
      const t = this.bestByTask.get(r.task);
      if (!t || sp > t.speedup)
        this.bestByTask.set(r.task, { task: r.task, speedup: sp, episode: r.episode, turn: r.turn, code: r.action });
    }
  }

  /** The turn's episode, opened by its first turn seen. */
  private episodeAgg(r: Turn, o: string): EpisodeAgg {
    let e = this.episodes.get(r.episode);
    if (!e) {
      e = {
        taskset: r.taskset,
        task: r.task,
        group: r.group,
        episode: r.episode,
        time: r.time,
        lastOutcome: o,
        turns: 0,
        bestCorrect: 0,
        bestSpeedup: null,
        totalReward: 0,
      };
      this.episodes.set(r.episode, e);
    }
    return e;
  }

  result(): RunStats {
    const fastP: RunStats['fastP'] = {};
    const byTaskset = new Map<string, number[]>();
    for (const e of this.episodes.values()) {
      let list = byTaskset.get(e.taskset);
      if (!list) byTaskset.set(e.taskset, (list = []));
      list.push(e.bestCorrect);
    }
    for (const [set, best] of byTaskset) {
      fastP[set] = {};
      for (const p of [0, 1, 1.2, 2]) fastP[set]![String(p)] = best.filter((s) => s > p).length / best.length;
    }
    const stages: RunStats['stages'] = {};
    for (const [name, d] of this.stageMs)
      stages[name] = { n: d.n, p50: d.quantile(0.5), p90: d.quantile(0.9), max: d.max };
    const mean = (c: { sum: number; n: number }) => (c.n ? c.sum / c.n : null);
    return {
      steps: this.steps,
      episodes: this.episodes.size,
      outcomes: this.outcomes,
      timeline: [...this.timeline.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([start, c]) => ({ start, outcomes: c.outcomes, meanReward: mean(c) })),
      bucketMs: this.bucketMs,
      perTurn: [...this.perTurn.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([turn, c]) => ({ turn, outcomes: c.outcomes, meanReward: mean(c) })),
      rewardHistogram: this.rewardHistogram,
      speedupHistogram: this.speedupHistogram,
      flags: this.flags,
      stages,
      fastP,
      best: [...this.bestByTask.values()].sort((a, b) => a.task.localeCompare(b.task)),
      slowest: this.slowest,
      evalsPerMinute: this.lastMinute,
    };
  }

  /** The most recent episodes, newest first, one line each. */
  recentEpisodes(limit: number) {
    const top: EpisodeAgg[] = [];
    for (const e of this.episodes.values()) {
      if (top.length === limit && e.time <= top[top.length - 1]!.time) continue;
      // Newest first; among equal times, the earlier seen stays first.
      let lo = 0;
      let hi = top.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (top[mid]!.time >= e.time) lo = mid + 1;
        else hi = mid;
      }
      top.splice(lo, 0, e);
      if (top.length > limit) top.pop();
    }
    return top.map((e) => ({
      time: e.time,
      task: e.task,
      group: e.group,
      episode: e.episode,
      turns: e.turns,
      lastOutcome: e.lastOutcome,
      bestSpeedup: e.bestSpeedup,
      totalReward: e.totalReward,
    }));
  }
}

export function runStats(records: readonly Turn[], opts: { buckets?: number; now?: number } = {}): RunStats {
  const b = new RunStatsBuilder(rangeOf(records), opts);
  for (const r of records) b.add(r);
  return b.result();
}

/** A turn as the episode view shows it. */
export interface EpisodeTurnView {
  turn: number;
  action: string;
  feedback: string;
  reward: number;
  components: Record<string, number>;
  mask: boolean;
  reason: string | null;
  eval: Turn['eval'];
}

export interface EpisodeView {
  episode: string;
  task: string;
  group: string;
  seed: number | null;
  prompt: string;
  turns: EpisodeTurnView[];
}

/** The recent episodes, newest first, one line each. */
export function episodeSummaries(records: readonly Turn[], limit: number) {
  const by = new Map<string, Turn[]>();
  for (const r of records) {
    const list = by.get(r.episode) ?? [];
    list.push(r);
    by.set(r.episode, list);
  }
  return [...by.values()]
    .map((turns) => {
      const last = turns[turns.length - 1]!;
      const speeds = turns
        .filter((t) => t.eval?.outcome === 'ok' && t.eval.speedup !== null)
        .map((t) => t.eval!.speedup!);
      return {
        time: last.time,
        task: last.task,
        group: last.group,
        episode: last.episode,
        turns: turns.filter((t) => !t.mask).length,
        lastOutcome: outcomeOf(last),
        bestSpeedup: speeds.length ? Math.max(...speeds) : null,
        totalReward: turns.filter((t) => !t.mask).reduce((a, t) => a + t.reward, 0),
      };
    })
    .sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0))
    .slice(0, limit);
}

/** One episode's conversation, turn by turn, from its records. */
export function episodeView(records: readonly Turn[], episode: string): EpisodeView | null {
  const turns = records
    .filter((r) => r.episode === episode)
    .sort((a, b) => a.turn - b.turn || (a.time < b.time ? -1 : 1));
  if (!turns.length) return null;
  const first = turns[0]!;
  const prompt = first.observation.messages.map((m) => `[${m.role}]\n${m.content}`).join('\n\n');
  return {
    episode,
    task: first.task,
    group: first.group,
    seed: first.seed,
    prompt,
    turns: turns.map((r, i) => ({
      turn: r.turn,
      action: r.action,
      // Logs written before the feedback was recorded: the next turn's observation is it.
      feedback:
        r.feedback ??
        turns
          .slice(i + 1)
          .find((n) => !n.mask)
          ?.observation.messages.map((m) => m.content)
          .join('\n') ??
        '',
      reward: r.reward,
      components: r.components,
      mask: r.mask,
      reason: r.reason,
      eval: r.eval,
    })),
  };
}

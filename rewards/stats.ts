/** What a run looks like, from its turn records: the outcome mix over time and
 * per turn, reward and speedup distributions, hack flags, stage latencies,
 * fast_p and the best kernels. One pure function serves the live dashboard
 * and the offline report. */

/** The fields of a turn record (a log line, or the server's in-memory copy) used here. */
export interface TurnSummary {
  time: string;
  taskset: string;
  task: string;
  episode: string;
  group: string;
  turn: number;
  reward: number;
  mask: boolean;
  action: string;
  eval: {
    outcome: string;
    correct: boolean;
    speedup: number | null;
    flags: { kind: string; evidence: string }[];
    stages: { name: string; status: string; ms: number }[];
  } | null;
  reason: string | null;
}

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

const outcomeOf = (r: TurnSummary) => (r.mask ? (r.reason ?? 'env_error') : (r.eval?.outcome ?? r.reason ?? 'unknown'));

function quantile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : 0;
}

function mean(xs: number[]): number | null {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

export function runStats(records: readonly TurnSummary[], opts: { buckets?: number; now?: number } = {}): RunStats {
  const times = records.map((r) => Date.parse(r.time));
  // Loops, not Math.min(...xs): a long run has more records than a call has room for arguments.
  const t0 = times.length ? times.reduce((a, b) => (b < a ? b : a)) : 0;
  const t1 = times.length ? times.reduce((a, b) => (b > a ? b : a)) : 0;
  const buckets = opts.buckets ?? 30;
  const bucketMs = Math.max(1000, Math.ceil((t1 - t0 + 1) / buckets));
  const timeline = new Map<number, { outcomes: Record<string, number>; rewards: number[] }>();
  const perTurn = new Map<number, { outcomes: Record<string, number>; rewards: number[] }>();
  const outcomes: Record<string, number> = {};
  const flags: Record<string, number> = {};
  const stageMs: Record<string, number[]> = {};
  const slowest: RunStats['slowest'] = [];
  const bestByEpisode = new Map<string, { taskset: string; speedup: number }>();
  const bestByTask = new Map<string, RunStats['best'][number]>();
  const rewards: number[] = [];
  const speedups: number[] = [];
  records.forEach((r, i) => {
    const o = outcomeOf(r);
    outcomes[o] = (outcomes[o] ?? 0) + 1;
    const b = t0 + Math.floor((times[i]! - t0) / bucketMs) * bucketMs;
    const cell = timeline.get(b) ?? { outcomes: {}, rewards: [] };
    cell.outcomes[o] = (cell.outcomes[o] ?? 0) + 1;
    const turn = perTurn.get(r.turn) ?? { outcomes: {}, rewards: [] };
    turn.outcomes[o] = (turn.outcomes[o] ?? 0) + 1;
    if (!r.mask) {
      cell.rewards.push(r.reward);
      turn.rewards.push(r.reward);
      rewards.push(r.reward);
    }
    timeline.set(b, cell);
    perTurn.set(r.turn, turn);
    for (const f of r.eval?.flags ?? []) flags[f.kind] = (flags[f.kind] ?? 0) + 1;
    for (const s of r.eval?.stages ?? []) {
      if (s.status === 'skipped') continue;
      (stageMs[s.name] ??= []).push(s.ms);
      slowest.push({ stage: s.name, ms: s.ms, task: r.task, episode: r.episode, turn: r.turn });
    }
    bestByEpisode.set(r.episode, bestByEpisode.get(r.episode) ?? { taskset: r.taskset, speedup: 0 });
    if (o === 'ok' && r.eval?.correct && r.eval.speedup !== null) {
      speedups.push(r.eval.speedup);
      const e = bestByEpisode.get(r.episode)!;
      if (r.eval.speedup > e.speedup) e.speedup = r.eval.speedup;
      const t = bestByTask.get(r.task);
      if (!t || r.eval.speedup > t.speedup) bestByTask.set(r.task, { task: r.task, speedup: r.eval.speedup, episode: r.episode, turn: r.turn, code: r.action });
    }
  });
  const fastP: RunStats['fastP'] = {};
  const byTaskset = new Map<string, number[]>();
  for (const e of bestByEpisode.values()) {
    const list = byTaskset.get(e.taskset) ?? [];
    list.push(e.speedup);
    byTaskset.set(e.taskset, list);
  }
  for (const [set, best] of byTaskset) {
    fastP[set] = {};
    for (const p of [0, 1, 1.2, 2]) fastP[set]![String(p)] = best.filter((s) => s > p).length / best.length;
  }
  const stages: RunStats['stages'] = {};
  for (const [name, ms] of Object.entries(stageMs)) {
    ms.sort((a, b) => a - b);
    stages[name] = { n: ms.length, p50: quantile(ms, 0.5), p90: quantile(ms, 0.9), max: ms[ms.length - 1]! };
  }
  const lo = rewards.reduce((a, b) => (b < a ? b : a), 0);
  const hi = rewards.reduce((a, b) => (b > a ? b : a), 1);
  const width = (hi - lo) / 20;
  const rewardHistogram = Array.from({ length: 20 }, (_, k) => ({ lo: lo + k * width, hi: lo + (k + 1) * width, n: 0 }));
  for (const r of rewards) rewardHistogram[Math.min(19, Math.floor((r - lo) / width))]!.n++;
  const speedupHistogram = Array.from({ length: 14 }, (_, k) => ({ lo: 2 ** (k - 4), hi: 2 ** (k - 3), n: 0 }));
  for (const s of speedups) speedupHistogram[Math.max(0, Math.min(13, Math.floor(Math.log2(s)) + 4))]!.n++;
  const now = opts.now ?? t1;
  const lastMinute = times.filter((t) => t > now - 60_000).length;
  return {
    steps: records.length,
    episodes: bestByEpisode.size,
    outcomes,
    timeline: [...timeline.entries()].sort((a, b) => a[0] - b[0]).map(([start, c]) => ({ start, outcomes: c.outcomes, meanReward: mean(c.rewards) })),
    bucketMs,
    perTurn: [...perTurn.entries()].sort((a, b) => a[0] - b[0]).map(([turn, c]) => ({ turn, outcomes: c.outcomes, meanReward: mean(c.rewards) })),
    rewardHistogram,
    speedupHistogram,
    flags,
    stages,
    fastP,
    best: [...bestByTask.values()].sort((a, b) => a.task.localeCompare(b.task)),
    slowest: slowest.sort((a, b) => b.ms - a.ms).slice(0, 10),
    evalsPerMinute: lastMinute,
  };
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
  eval: (TurnSummary['eval'] & { message: string }) | null;
}

export interface EpisodeView {
  episode: string;
  task: string;
  group: string;
  seed: number | null;
  prompt: string;
  turns: EpisodeTurnView[];
}

type FullRecord = TurnSummary & { feedback?: string; components?: Record<string, number>; seed?: number; observation?: { messages: { role: string; content: string }[] } };

/** The recent episodes, newest first, one line each. */
export function episodeSummaries(records: readonly TurnSummary[], limit: number) {
  const by = new Map<string, TurnSummary[]>();
  for (const r of records) {
    const list = by.get(r.episode) ?? [];
    list.push(r);
    by.set(r.episode, list);
  }
  return [...by.values()]
    .map((turns) => {
      const last = turns[turns.length - 1]!;
      const speeds = turns.filter((t) => t.eval?.outcome === 'ok' && t.eval.speedup !== null).map((t) => t.eval!.speedup!);
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
export function episodeView(records: readonly TurnSummary[], episode: string): EpisodeView | null {
  const turns = (records as FullRecord[]).filter((r) => r.episode === episode).sort((a, b) => a.turn - b.turn || (a.time < b.time ? -1 : 1));
  if (!turns.length) return null;
  const first = turns[0]!;
  const prompt = first.observation?.messages.map((m) => `[${m.role}]\n${m.content}`).join('\n\n') ?? '';
  return {
    episode,
    task: first.task,
    group: first.group,
    seed: first.seed ?? null,
    prompt,
    turns: turns.map((r, i) => ({
      turn: r.turn,
      action: r.action,
      // Logs written before the feedback was recorded: the next turn's observation is it.
      feedback: r.feedback ?? turns.slice(i + 1).find((n) => !n.mask)?.observation?.messages.map((m) => m.content).join('\n') ?? '',
      reward: r.reward,
      components: r.components ?? {},
      mask: r.mask,
      reason: r.reason,
      eval: (r.eval as EpisodeTurnView['eval']) ?? null,
    })),
  };
}

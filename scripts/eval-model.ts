/** `anvil eval-model`: plays episodes of a task set against any OpenAI-compatible chat endpoint
 * (POST {base}/chat/completions) through an Anvil server of its own on loopback, then prints
 * correctness and fast_p per task and writes the turn logs, eval.json and an HTML report.
 * An endpoint failure ends that episode as `endpoint_error`, and an evaluation that Anvil masks
 * is retried: neither is counted as the model's failure. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { AnvilClient, type ChatMessage } from '../clients/ts/client.js';
import { AnvilServer } from '../env/server.js';
import { writeReport } from '../records/report.js';

export interface EvalModelOptions {
  baseUrl: string;
  model: string;
  apiKey?: string;
  taskset: string;
  split: 'train' | 'eval';
  /** Only these tasks (default: every task of the split). */
  tasks?: string[];
  /** Episodes per task, in groups of `samples` on one seed. */
  episodes: number;
  samples: number;
  maxTurns?: number;
  temperature: number;
  maxTokens: number;
  /** fast_p thresholds: a correct kernel faster than p × the reference. */
  p: number[];
  concurrency: number;
  out: string;
  requestTimeoutMs: number;
}

export interface TaskScore {
  task: string;
  episodes: number;
  /** Episodes ended by the endpoint failing: counted in no score. */
  endpointErrors: number;
  correct: number;
  fastP: Record<string, number>;
  /** With samples > 1: the share of groups where some sample is fast_p. */
  fastPAtK: Record<string, number> | null;
}

interface EpisodeScore {
  task: string;
  group: string;
  correct: boolean;
  bestSpeedup: number | null;
  endpointError: string | null;
  /** Turns Anvil logged, masked ones too. */
  turns: number;
}

async function chat(o: EvalModelOptions, messages: ChatMessage[]): Promise<string> {
  const res = await fetch(`${o.baseUrl.replace(/\/+$/, '')}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}) },
    body: JSON.stringify({ model: o.model, messages, temperature: o.temperature, max_tokens: o.maxTokens }),
    signal: AbortSignal.timeout(o.requestTimeoutMs),
  });
  if (!res.ok) throw new Error(`the endpoint answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  const body = (await res.json()) as { choices?: Array<{ message?: { content?: unknown } }> };
  const content = body.choices?.[0]?.message?.content;
  if (typeof content !== 'string') throw new Error('the endpoint answered without choices[0].message.content');
  return content;
}

/** At most `n` of the thunks at a time. */
async function pooled<T>(n: number, jobs: Array<() => Promise<T>>): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, jobs.length) }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await jobs[i]!();
      }
    }),
  );
  return out;
}

/** Masked evaluations (infrastructure failures) of one turn retried at most this many times. */
const MASKED_RETRIES = 3;

async function play(
  o: EvalModelOptions,
  client: AnvilClient,
  ep: { episode: string; group: string; task: string; messages: ChatMessage[] },
): Promise<EpisodeScore> {
  const score: EpisodeScore = {
    task: ep.task,
    group: ep.group,
    correct: false,
    bestSpeedup: null,
    endpointError: null,
    turns: 0,
  };
  const messages = [...ep.messages];
  for (let masked = 0; ;) {
    let reply: string;
    try {
      reply = await chat(o, messages);
    } catch (e) {
      score.endpointError = (e as Error).message;
      await client.closeEpisode(ep.episode);
      return score;
    }
    const r = await client.step(ep.episode, reply);
    score.turns++;
    if (r.info.mask) {
      if (++masked > MASKED_RETRIES) {
        score.endpointError = `Anvil masked ${masked} evaluations in a row (infrastructure failures)`;
        return score;
      }
      continue;
    }
    masked = 0;
    if (r.info.eval?.correct && r.info.outcome === 'ok') {
      score.correct = true;
      score.bestSpeedup = Math.max(score.bestSpeedup ?? 0, r.info.eval.speedup ?? 0);
    }
    messages.push({ role: 'assistant', content: reply }, ...r.observation.messages);
    if (r.terminated || r.truncated) return score;
  }
}

export async function runEvalModel(o: EvalModelOptions): Promise<{ tasks: TaskScore[]; written: string[] }> {
  mkdirSync(o.out, { recursive: true });
  const logDir = path.join(o.out, 'logs');
  const server = new AnvilServer({
    host: '127.0.0.1',
    port: 0,
    taskset: o.taskset,
    logDir,
    maxGroupSize: Math.max(64, o.samples),
  });
  await server.listen();
  const client = await AnvilClient.connect(`ws://127.0.0.1:${server.port}/v1/ws`);
  try {
    const tasks = await chosenTasks(client, o);
    const jobs = await episodeJobs(client, o, tasks);
    const played = await pooled(o.concurrency, jobs);
    const scores = tasks.map((task) =>
      score(
        task,
        played.filter((e) => e.task === task),
        o,
      ),
    );
    const summary = {
      model: o.model,
      baseUrl: o.baseUrl,
      taskset: o.taskset,
      split: o.split,
      episodes: o.episodes,
      samples: o.samples,
      p: o.p,
      tasks: scores,
    };
    const json = path.join(o.out, 'eval.json');
    writeFileSync(json, `${JSON.stringify(summary, null, 2)}\n`);
    const html = path.join(o.out, 'report.html');
    await server.close(); // the log is complete before the report reads it
    if (played.every((e) => e.turns === 0)) return { tasks: scores, written: [json, 'no turn was played: no report'] };
    await writeReport({ logs: logDir, out: html });
    return { tasks: scores, written: [json, html, logDir] };
  } finally {
    await client.close().catch(() => undefined);
    await server.close().catch(() => undefined);
  }
}

/** The tasks to play: those asked for, each checked to be in the split, or the whole split. */
async function chosenTasks(client: AnvilClient, o: EvalModelOptions): Promise<string[]> {
  const listed = (await client.tasks({ split: o.split })).tasks.map((t) => String(t.id));
  const unknown = (o.tasks ?? []).filter((t) => !listed.includes(t));
  if (unknown.length)
    throw new Error(`not in the ${o.split} split of ${o.taskset}: ${unknown.join(', ')} (it has ${listed.join(', ')})`);
  return o.tasks ?? listed;
}

/** Resets every task's episodes, in groups of `samples`, and returns one job per episode to play. */
async function episodeJobs(
  client: AnvilClient,
  o: EvalModelOptions,
  tasks: string[],
): Promise<Array<() => Promise<EpisodeScore>>> {
  const groups = Math.ceil(o.episodes / o.samples);
  const jobs: Array<() => Promise<EpisodeScore>> = [];
  for (const task of tasks)
    for (let g = 0; g < groups; g++) {
      const size = Math.min(o.samples, o.episodes - g * o.samples);
      const eps = await client.reset({
        task,
        seed: g,
        group: { size },
        options: o.maxTurns ? { maxTurns: o.maxTurns } : undefined,
      });
      for (const e of eps)
        jobs.push(() =>
          play(o, client, { episode: e.episode, group: e.group, task, messages: e.observation.messages }),
        );
    }
  return jobs;
}

function score(task: string, eps: EpisodeScore[], o: EvalModelOptions): TaskScore {
  const counted = eps.filter((e) => !e.endpointError);
  const share = (xs: EpisodeScore[], f: (e: EpisodeScore) => boolean) =>
    xs.length ? xs.filter(f).length / xs.length : 0;
  const fast = (p: number) => (e: EpisodeScore) => e.correct && (e.bestSpeedup ?? 0) > p;
  const byGroup = new Map<string, EpisodeScore[]>();
  for (const e of counted) byGroup.set(e.group, [...(byGroup.get(e.group) ?? []), e]);
  const groups = [...byGroup.values()];
  return {
    task,
    episodes: eps.length,
    endpointErrors: eps.length - counted.length,
    correct: share(counted, (e) => e.correct),
    fastP: Object.fromEntries(o.p.map((p) => [String(p), share(counted, fast(p))])),
    fastPAtK:
      o.samples > 1
        ? Object.fromEntries(
            o.p.map((p) => [
              String(p),
              groups.length ? groups.filter((g) => g.some(fast(p))).length / groups.length : 0,
            ]),
          )
        : null,
  };
}

export function formatScores(scores: TaskScore[], samples: number): string {
  const ps = Object.keys(scores[0]?.fastP ?? {});
  const head = [
    'task',
    'episodes',
    'errors',
    'correct',
    ...ps.map((p) => `fast_${p}`),
    ...(samples > 1 ? ps.map((p) => `fast_${p}@${samples}`) : []),
  ];
  const rows = scores.map((s) => [
    s.task,
    String(s.episodes),
    String(s.endpointErrors),
    s.correct.toFixed(2),
    ...ps.map((p) => s.fastP[p]!.toFixed(2)),
    ...(s.fastPAtK ? ps.map((p) => s.fastPAtK![p]!.toFixed(2)) : []),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

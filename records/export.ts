/** `anvil export`: per-turn logs → a dataset. Reads every log file of a folder
 * (a torn or corrupt line is skipped and reported), joins turns into episodes
 * and groups, computes returns, TRLOO advantages and keep flags, and writes one
 * row per turn (optionally one per episode) in chat-message form, as JSON Lines
 * or Parquet. The same logs always give the same bytes. */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { ChatMessage, StoredTurnRecord } from '../contracts/record.js';
import { cmp, writeMerged, writeRun, type Column, type SortKey } from './dataset-files.js';
import { eachTurnLog, logFiles, parseTurnLine } from './logs.js';
import { keepFlag, trloo, type EndedBaseline } from '../rewards/trloo.js';

export interface TurnRow {
  task: string;
  taskVersion: number;
  seed: number;
  group: string;
  /** The episode's place in its group (reset with a group of several). */
  index: number;
  episode: string;
  turn: number;
  messages: ChatMessage[];
  action: string;
  /** --layout trl: the conversation before the reply, and the reply, as TRL's conversational prompt/completion. */
  prompt?: ChatMessage[];
  completion?: ChatMessage[];
  reward: number;
  components: Record<string, number>;
  return: number | null;
  advantage: number | null;
  mask: boolean;
  keep: boolean;
  meta: unknown;
  outcome: string;
  speedup: number | null;
  policyVersion: string | null;
  completionIds: number[] | null;
  logprobs: number[] | null;
  /** --per-token: one value per completion token, for trainers that weight tokens. */
  tokenMask?: number[] | null;
  tokenAdvantages?: number[] | null;
}

export interface EpisodeRow {
  task: string;
  group: string;
  episode: string;
  messages: ChatMessage[];
  turns: number;
  return: number | null;
  bestReward: number | null;
  bestSpeedup: number | null;
  outcomes: string[];
}

export type Filter = 'correct' | 'best' | 'improved';
export const FILTERS: readonly Filter[] = ['correct', 'best', 'improved'];

export interface ExportOptions {
  logs: string;
  out: string;
  format: 'jsonl' | 'parquet';
  gamma: number;
  prsTau: number;
  prsF: number;
  filters: Filter[];
  /** Also write one row per episode, to `<out>` with `.episodes` before the extension. */
  episodes: boolean;
  onProgress?: (readBytes: number, totalBytes: number) => void;
  /** Log bytes per partition (default 32 MiB); smaller in tests, to show the output does not depend on it. */
  partitionBytes?: number;
  /** `anvil` (default): messages and action; `trl`: prompt and completion, TRL's conversational layout. */
  layout?: 'anvil' | 'trl';
  /** Per-token columns (tokenMask, tokenAdvantages) from the turns' completion token ids. */
  perToken?: boolean;
  /** The baseline of turn t counts episodes that ended before t as a return of 0 ('zero'), or leaves them out ('exclude', default). */
  endedBaseline?: EndedBaseline;
}

export interface ExportReport {
  files: number;
  records: number;
  skipped: Array<{ file: string; line: number; reason: string }>;
  rows: number;
  episodes: number;
  groups: number;
  /** Groups holding one episode: their advantage is the raw return (no baseline). */
  singletonGroups: number;
  written: string[];
}

/** Log bytes per partition: one partition at a time is held in memory, whatever the run's length. */
const PARTITION_BYTES = 32 * 1024 ** 2;

/** Streams: the logs are split by group into partitions on disk (whole groups
 * together, which TRLOO needs), each partition is sorted and turned into rows
 * in memory on its own, and the sorted partitions are merged into the output.
 * Memory is bounded by one partition (32 MiB of logs) and one Parquet row
 * group, not by the run's length. The output order (group, episode, turn, time)
 * does not depend on the partitioning, so the same logs give the same bytes. */
export async function exportDataset(opts: ExportOptions): Promise<ExportReport> {
  const work = mkdtempSync(path.join(path.dirname(path.resolve(opts.out)), '.anvil-export-'));
  try {
    const parts = await partition(opts.logs, work, opts.partitionBytes ?? PARTITION_BYTES, opts.onProgress);
    const report: ExportReport = {
      files: parts.files,
      records: parts.records,
      skipped: parts.skipped,
      rows: 0,
      episodes: 0,
      groups: 0,
      singletonGroups: 0,
      written: [],
    };
    const columns = turnColumnsFor(opts);
    const turnRuns: string[] = [];
    const episodeRuns: string[] = [];
    for (const [i, file] of parts.paths.entries()) {
      const r = sortedRows(readPartition(file), opts);
      rmSync(file);
      report.rows += r.rows.length;
      report.episodes += r.episodes.length;
      report.groups += r.groups;
      report.singletonGroups += r.singletonGroups;
      turnRuns.push(writeRun(path.join(work, `turns-${i}.run`), r.rows, columns));
      if (opts.episodes) episodeRuns.push(writeRun(path.join(work, `episodes-${i}.run`), r.episodes, episodeColumns));
    }
    await writeMerged(opts.out, opts.format, turnRuns, columns);
    report.written.push(opts.out);
    if (opts.episodes) {
      const ext = path.extname(opts.out);
      const file = `${opts.out.slice(0, opts.out.length - ext.length)}.episodes${ext}`;
      await writeMerged(file, opts.format, episodeRuns, episodeColumns);
      report.written.push(file);
    }
    return report;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** FNV-1a of a group id: which partition it goes to. */
function partitionOf(group: string, n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < group.length; i++) h = Math.imul(h ^ group.charCodeAt(i), 0x01000193);
  return (h >>> 0) % n;
}

/** Pass 1: every valid record line goes, as it is, to its group's partition file. */
async function partition(dir: string, work: string, partitionBytes: number, onProgress?: ExportOptions['onProgress']) {
  const { total } = logFiles(dir);
  const n = Math.max(1, Math.ceil(total / partitionBytes));
  const paths = Array.from({ length: n }, (_, i) => path.join(work, `part-${i}.jsonl`));
  const out = paths.map((p) => ({ fd: openSync(p, 'w'), chunks: [] as string[], bytes: 0 }));
  // Buffers over all partitions stay within 64 MiB, however many partitions a long run needs.
  const flushAt = Math.max(16 * 1024, Math.min(1024 ** 2, (64 * 1024 ** 2) / n));
  const flush = (o: (typeof out)[number]) => {
    if (o.chunks.length) writeSync(o.fd, o.chunks.join(''));
    o.chunks = [];
    o.bytes = 0;
  };
  try {
    const read = await eachTurnLog(
      dir,
      (r, line) => {
        const o = out[partitionOf(r.group, n)]!;
        o.chunks.push(line, '\n');
        o.bytes += line.length + 1;
        if (o.bytes > flushAt) flush(o);
      },
      onProgress,
    );
    return { ...read, paths };
  } finally {
    for (const o of out) {
      flush(o);
      closeSync(o.fd);
    }
  }
}

/** A partition's records; its lines passed the schema in pass 1, so a line that fails now is a bug. */
function readPartition(file: string): StoredTurnRecord[] {
  const text = readFileSync(file, 'utf8');
  const out: StoredTurnRecord[] = [];
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    const r = parseTurnLine(text.slice(pos, nl));
    if (typeof r === 'string') throw new Error(`export: partition ${path.basename(file)}: ${r}`);
    out.push(r);
    pos = nl + 1;
  }
  return out;
}

/** A row with the key it is sorted by. */
type KeyedRow = TurnRow & { key: SortKey };

/** One partition's rows, in output order, with their sort keys. */
function sortedRows(
  records: StoredTurnRecord[],
  opts: ExportOptions,
): { rows: KeyedRow[]; episodes: Array<EpisodeRow & { key: SortKey }>; groups: number; singletonGroups: number } {
  // Deterministic order: group, episode, turn, then time (a masked attempt before its retry).
  records.sort(
    (a, b) =>
      cmp(a.group, b.group) ||
      cmp(a.episode, b.episode) ||
      a.turn - b.turn ||
      cmp(a.time, b.time) ||
      Number(b.mask) - Number(a.mask),
  );
  const values = trloo(
    records.map((r) => ({ group: r.group, episode: r.episode, turn: r.turn, reward: r.reward, mask: r.mask })),
    opts.gamma,
    opts.endedBaseline,
  );
  let rows: KeyedRow[] = [];
  let conversation: ChatMessage[] = [];
  let current = '';
  records.forEach((r, i) => {
    if (r.episode !== current) {
      current = r.episode;
      conversation = [];
    }
    const messages = [...conversation, ...r.observation.messages];
    if (!r.mask) conversation = [...messages, { role: 'assistant', content: r.action }];
    rows.push(turnRow(r, messages, values[i]!, opts));
  });
  const episodes = episodeRows(rows, conversationsOf(records)).map((e) => ({
    ...e,
    key: [e.group, e.episode] as SortKey,
  }));
  rows = applyFilters(rows, opts.filters);
  const perGroup = new Map<string, Set<string>>();
  for (const r of records) perGroup.set(r.group, (perGroup.get(r.group) ?? new Set()).add(r.episode));
  return {
    rows,
    episodes,
    groups: perGroup.size,
    singletonGroups: [...perGroup.values()].filter((e) => e.size === 1).length,
  };
}

/** A turn's row: the conversation up to it, its reward, return, advantage and keep flag. */
function turnRow(
  r: StoredTurnRecord,
  messages: ChatMessage[],
  value: { return: number | null; advantage: number | null },
  opts: ExportOptions,
): KeyedRow {
  const { advantage } = value;
  const ids = r.completionIds;
  return {
    key: [r.group, r.episode, r.turn, r.time, r.mask ? 0 : 1],
    task: r.task,
    taskVersion: r.taskVersion,
    seed: r.seed,
    group: r.group,
    index: r.index,
    episode: r.episode,
    turn: r.turn,
    messages,
    action: r.action,
    ...(opts.layout === 'trl' ? { prompt: messages, completion: [{ role: 'assistant', content: r.action }] } : {}),
    reward: r.reward,
    components: r.components,
    return: value.return,
    advantage,
    mask: r.mask,
    keep: keepFlag(
      {
        episode: r.episode,
        turn: r.turn,
        mask: r.mask,
        correct: r.eval?.correct ?? false,
        profileShare: r.eval?.profileShare ?? null,
      },
      opts.prsTau,
      opts.prsF,
    ),
    meta: r.meta,
    outcome: r.eval?.outcome ?? r.reason ?? 'unknown',
    speedup: r.eval?.speedup ?? null,
    policyVersion: r.policyVersion,
    completionIds: ids,
    logprobs: r.logprobs,
    ...(opts.perToken
      ? {
          tokenMask: ids && ids.map(() => (r.mask ? 0 : 1)),
          tokenAdvantages: ids && (advantage === null ? null : ids.map(() => advantage)),
        }
      : {}),
  };
}

/** Each episode's whole conversation: its unmasked turns, in order. */
function conversationsOf(records: StoredTurnRecord[]): Map<string, ChatMessage[]> {
  const out = new Map<string, ChatMessage[]>();
  for (const r of records) {
    if (r.mask) continue;
    const c = out.get(r.episode) ?? [];
    c.push(...r.observation.messages, { role: 'assistant', content: r.action });
    out.set(r.episode, c);
  }
  return out;
}

function episodeRows(rows: TurnRow[], conversations: Map<string, ChatMessage[]>): EpisodeRow[] {
  const by = new Map<string, TurnRow[]>();
  for (const r of rows) {
    if (r.mask) continue;
    const list = by.get(r.episode) ?? [];
    list.push(r);
    by.set(r.episode, list);
  }
  return [...by.values()].map((turns) => {
    const first = turns[0]!;
    const speedups = turns.filter((t) => t.outcome === 'ok' && t.speedup !== null).map((t) => t.speedup!);
    return {
      task: first.task,
      group: first.group,
      episode: first.episode,
      messages: conversations.get(first.episode) ?? [],
      turns: turns.length,
      return: first.return,
      bestReward: Math.max(...turns.map((t) => t.reward)),
      bestSpeedup: speedups.length ? Math.max(...speedups) : null,
      outcomes: turns.map((t) => t.outcome),
    };
  });
}

export function applyFilters<T extends TurnRow>(rows: T[], filters: Filter[]): T[] {
  let out = rows;
  for (const f of filters) {
    if (f === 'correct') out = out.filter((r) => !r.mask && r.outcome === 'ok');
    else if (f === 'best') {
      const best = new Map<string, T>();
      for (const r of out)
        if (!r.mask && (!best.has(r.episode) || r.reward > best.get(r.episode)!.reward)) best.set(r.episode, r);
      const keep = new Set(best.values());
      out = out.filter((r) => keep.has(r));
    } else if (f === 'improved') {
      const improved = new Set<string>();
      const first = new Map<string, number>();
      for (const r of rows) {
        if (r.mask) continue;
        if (!first.has(r.episode)) first.set(r.episode, r.reward);
        else if (r.reward > first.get(r.episode)!) improved.add(r.episode);
      }
      out = out.filter((r) => improved.has(r.episode));
    }
  }
  return out;
}

const turnColumns: Column<TurnRow>[] = [
  { name: 'task', type: 'string' },
  { name: 'taskVersion', type: 'int' },
  { name: 'seed', type: 'int' },
  { name: 'group', type: 'string' },
  { name: 'index', type: 'int' },
  { name: 'episode', type: 'string' },
  { name: 'turn', type: 'int' },
  { name: 'messages', type: 'messages' },
  { name: 'action', type: 'string' },
  { name: 'reward', type: 'float' },
  { name: 'components', type: 'json' },
  { name: 'return', type: 'float' },
  { name: 'advantage', type: 'float' },
  { name: 'mask', type: 'bool' },
  { name: 'keep', type: 'bool' },
  { name: 'meta', type: 'json' },
  { name: 'outcome', type: 'string' },
  { name: 'speedup', type: 'float' },
  { name: 'policyVersion', type: 'string' },
  { name: 'completionIds', type: 'ints' },
  { name: 'logprobs', type: 'floats' },
];

/** The turn columns of a layout: TRL's has prompt and completion in place of messages and action. */
function turnColumnsFor(opts: ExportOptions): Column<TurnRow>[] {
  let cols = turnColumns;
  if (opts.layout === 'trl')
    cols = cols.flatMap((c): Column<TurnRow>[] =>
      c.name === 'messages'
        ? [
            { name: 'prompt', type: 'messages' },
            { name: 'completion', type: 'messages' },
          ]
        : c.name === 'action'
          ? []
          : [c],
    );
  if (opts.perToken) cols = [...cols, { name: 'tokenMask', type: 'ints' }, { name: 'tokenAdvantages', type: 'floats' }];
  return cols;
}

const episodeColumns: Column<EpisodeRow>[] = [
  { name: 'task', type: 'string' },
  { name: 'group', type: 'string' },
  { name: 'episode', type: 'string' },
  { name: 'messages', type: 'messages' },
  { name: 'turns', type: 'int' },
  { name: 'return', type: 'float' },
  { name: 'bestReward', type: 'float' },
  { name: 'bestSpeedup', type: 'float' },
  { name: 'outcomes', type: 'strings' },
];

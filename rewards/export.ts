/** `anvil export`: per-turn logs → a dataset. Reads every log file of a folder
 * (a torn or corrupt line is skipped and reported), joins turns into episodes
 * and groups, computes returns, TRLOO advantages and keep flags, and writes one
 * row per turn (optionally one per episode) in chat-message form, as JSON Lines
 * or Parquet. The same logs always give the same bytes. */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Bool, Field, Float64, Int32, List, Struct, Utf8, makeTable, tableToIPC, vectorFromArray } from 'apache-arrow';
import { readTurnLogs } from './logs.js';
import { keepFlag, trloo } from './trloo.js';

export interface ChatMessage {
  role: string;
  content: string;
}

/** The fields of a log record that export reads (see env/gym.ts). */
interface LogRecord {
  time: string;
  episode: string;
  group: string;
  index: number;
  task: string;
  taskVersion: number;
  turn: number;
  observation: { messages: ChatMessage[] };
  action: string;
  meta: unknown;
  eval: { outcome: string; correct: boolean; speedup: number | null; profileShare: number | null } | null;
  reward: number;
  components: Record<string, number>;
  mask: boolean;
  reason: string | null;
}

export interface TurnRow {
  task: string;
  group: string;
  episode: string;
  turn: number;
  messages: ChatMessage[];
  action: string;
  reward: number;
  components: Record<string, number>;
  return: number | null;
  advantage: number | null;
  mask: boolean;
  keep: boolean;
  meta: unknown;
  outcome: string;
  speedup: number | null;
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
}

export interface ExportReport {
  files: number;
  records: number;
  skipped: Array<{ file: string; line: number; reason: string }>;
  rows: number;
  episodes: number;
  groups: number;
  written: string[];
}


export async function exportDataset(opts: ExportOptions): Promise<ExportReport> {
  const read = await readTurnLogs<LogRecord>(opts.logs, opts.onProgress);
  const records = read.records;
  const report: ExportReport = { files: read.files, records: records.length, skipped: read.skipped, rows: 0, episodes: 0, groups: 0, written: [] };
  // Deterministic order: group, episode, turn, then time (a masked attempt before its retry).
  records.sort((a, b) => cmp(a.group, b.group) || cmp(a.episode, b.episode) || a.turn - b.turn || cmp(a.time, b.time) || Number(b.mask) - Number(a.mask));
  const values = trloo(
    records.map((r) => ({ group: r.group, episode: r.episode, turn: r.turn, reward: r.reward, mask: r.mask })),
    opts.gamma,
  );
  let rows: TurnRow[] = [];
  let conversation: ChatMessage[] = [];
  let current = '';
  records.forEach((r, i) => {
    if (r.episode !== current) {
      current = r.episode;
      conversation = [];
    }
    const messages = [...conversation, ...r.observation.messages];
    if (!r.mask) conversation = [...messages, { role: 'assistant', content: r.action }];
    rows.push({
      task: r.task,
      group: r.group,
      episode: r.episode,
      turn: r.turn,
      messages,
      action: r.action,
      reward: r.reward,
      components: r.components ?? {},
      return: values[i]!.return,
      advantage: values[i]!.advantage,
      mask: r.mask,
      keep: keepFlag({ episode: r.episode, turn: r.turn, mask: r.mask, correct: r.eval?.correct ?? false, profileShare: r.eval?.profileShare ?? null }, opts.prsTau, opts.prsF),
      meta: r.meta ?? null,
      outcome: r.eval?.outcome ?? r.reason ?? 'unknown',
      speedup: r.eval?.speedup ?? null,
    });
  });
  const episodes = episodeRows(rows, conversationsOf(records));
  rows = applyFilters(rows, opts.filters);
  report.rows = rows.length;
  report.episodes = episodes.length;
  report.groups = new Set(records.map((r) => r.group)).size;
  write(opts.out, opts.format, rows, turnColumns);
  report.written.push(opts.out);
  if (opts.episodes) {
    const ext = path.extname(opts.out);
    const file = `${opts.out.slice(0, opts.out.length - ext.length)}.episodes${ext}`;
    write(file, opts.format, episodes, episodeColumns);
    report.written.push(file);
  }
  return report;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Each episode's whole conversation: its unmasked turns, in order. */
function conversationsOf(records: LogRecord[]): Map<string, ChatMessage[]> {
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

export function applyFilters(rows: TurnRow[], filters: Filter[]): TurnRow[] {
  let out = rows;
  for (const f of filters) {
    if (f === 'correct') out = out.filter((r) => !r.mask && r.outcome === 'ok');
    else if (f === 'best') {
      const best = new Map<string, TurnRow>();
      for (const r of out) if (!r.mask && (!best.has(r.episode) || r.reward > best.get(r.episode)!.reward)) best.set(r.episode, r);
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

type Column<R> = { name: keyof R & string; type: 'string' | 'int' | 'float' | 'bool' | 'messages' | 'json' | 'strings' };

const turnColumns: Column<TurnRow>[] = [
  { name: 'task', type: 'string' },
  { name: 'group', type: 'string' },
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
];

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

function write<R>(file: string, format: 'jsonl' | 'parquet', rows: R[], columns: Column<R>[]): void {
  if (format === 'jsonl') {
    writeFileSync(file, rows.map((r) => JSON.stringify(Object.fromEntries(columns.map((c) => [c.name, r[c.name]])))).join('\n') + (rows.length ? '\n' : ''));
    return;
  }
  const message = new Struct([new Field('role', new Utf8()), new Field('content', new Utf8())]);
  const vectors = Object.fromEntries(
    columns.map((c) => {
      const data = rows.map((r) => r[c.name] as unknown);
      switch (c.type) {
        case 'string':
          return [c.name, vectorFromArray(data as string[], new Utf8())];
        case 'int':
          return [c.name, vectorFromArray(data as number[], new Int32())];
        case 'float':
          return [c.name, vectorFromArray(data as (number | null)[], new Float64())];
        case 'bool':
          return [c.name, vectorFromArray(data as boolean[], new Bool())];
        case 'messages':
          return [c.name, vectorFromArray(data as ChatMessage[][], new List(new Field('item', message)))];
        case 'strings':
          return [c.name, vectorFromArray(data as string[][], new List(new Field('item', new Utf8())))];
        case 'json':
          // Free-form maps (reward components, the client's meta) travel as JSON text.
          return [c.name, vectorFromArray(data.map((d) => JSON.stringify(d ?? null)), new Utf8())];
      }
    }),
  );
  const table = makeTable(vectors);
  writeParquetTable(file, tableToIPC(table, 'stream'));
}

function writeParquetTable(file: string, ipc: Uint8Array): void {
  // parquet-wasm is loaded lazily: its WebAssembly is only needed for Parquet.
  const pq = requireParquet();
  const t = pq.Table.fromIPCStream(ipc);
  writeFileSync(file, pq.writeParquet(t));
}

const require = createRequire(import.meta.url);
function requireParquet(): typeof import('parquet-wasm/node') {
  return require('parquet-wasm/node') as typeof import('parquet-wasm/node');
}

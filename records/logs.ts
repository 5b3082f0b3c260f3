/** Reads a folder of per-turn logs (`*.jsonl` written by anvil serve). Each line
 * is parsed with the turn record's schema; a line torn by a crash, or anything
 * that is not a turn record, is skipped and reported with its file, line and
 * why, never fatal and never cast. */
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { recordProblems, StoredTurnRecordSchema, type StoredTurnRecord } from '../contracts/record.js';

export class LogFolderError extends Error {}

export type Skipped = Array<{ file: string; line: number; reason: string }>;

/** The log files of a folder, in name order, and their total size. */
export function logFiles(dir: string): { files: string[]; total: number } {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new LogFolderError(`no such folder: ${dir}`);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort();
  if (files.length === 0)
    throw new LogFolderError(`${dir} holds no per-turn logs (*.jsonl files written by anvil serve --log-dir)`);
  return { files, total: files.reduce((a, f) => a + statSync(path.join(dir, f)).size, 0) };
}

/** Streams every turn record of a folder to `onRecord`, with its line as read;
 * holds one line at a time. */
export async function eachTurnLog(
  dir: string,
  onRecord: (record: StoredTurnRecord, line: string) => void,
  onProgress?: (readBytes: number, totalBytes: number) => void,
): Promise<{ files: number; records: number; skipped: Skipped }> {
  const { files, total } = logFiles(dir);
  let read = 0;
  let records = 0;
  const skipped: Skipped = [];
  for (const f of files) {
    const lines = createInterface({ input: createReadStream(path.join(dir, f), 'utf8'), crlfDelay: Infinity });
    let n = 0;
    for await (const line of lines) {
      n++;
      read += Buffer.byteLength(line) + 1;
      if (n % 1000 === 0) onProgress?.(read, total);
      if (!line.trim()) continue;
      const r = parseTurnLine(line);
      if (typeof r === 'string') {
        skipped.push({ file: f, line: n, reason: r.slice(0, 120) });
        continue;
      }
      records++;
      onRecord(r, line);
    }
  }
  onProgress?.(total, total);
  return { files: files.length, records, skipped };
}

/** One log line as a turn record, or why it is not one. */
export function parseTurnLine(line: string): StoredTurnRecord | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    return (e as Error).message;
  }
  const parsed = StoredTurnRecordSchema.safeParse(value);
  return parsed.success ? parsed.data : `not a turn record: ${recordProblems(parsed.error)}`;
}

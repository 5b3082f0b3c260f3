/** Reads a folder of per-turn logs (`*.jsonl` written by anvil serve). A line
 * torn by a crash, or anything that is not a turn record, is skipped and
 * reported, never fatal. */
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

export class LogFolderError extends Error {}

export interface ReadLogs<R> {
  records: R[];
  files: number;
  skipped: Array<{ file: string; line: number; reason: string }>;
}

export async function readTurnLogs<R>(dir: string, onProgress?: (readBytes: number, totalBytes: number) => void): Promise<ReadLogs<R>> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new LogFolderError(`no such folder: ${dir}`);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort();
  if (files.length === 0) throw new LogFolderError(`${dir} holds no per-turn logs (*.jsonl files written by anvil serve --log-dir)`);
  const total = files.reduce((a, f) => a + statSync(path.join(dir, f)).size, 0);
  let read = 0;
  const records: R[] = [];
  const skipped: ReadLogs<R>['skipped'] = [];
  for (const f of files) {
    const lines = createInterface({ input: createReadStream(path.join(dir, f), 'utf8'), crlfDelay: Infinity });
    let n = 0;
    for await (const line of lines) {
      n++;
      read += Buffer.byteLength(line) + 1;
      if (n % 1000 === 0) onProgress?.(read, total);
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line);
        if (typeof r.episode !== 'string' || typeof r.turn !== 'number' || typeof r.group !== 'string' || !Array.isArray(r.observation?.messages) || typeof r.action !== 'string')
          throw new Error('not a turn record');
        records.push(r as R);
      } catch (e) {
        skipped.push({ file: f, line: n, reason: (e as Error).message.slice(0, 120) });
      }
    }
  }
  onProgress?.(total, total);
  return { records, files: files.length, skipped };
}

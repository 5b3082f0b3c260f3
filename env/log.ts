/** The per-turn log: one JSON line per step, written before the answer leaves
 * the server, in files rotated by size. Each server process writes its own
 * files, named by start time and pid, so a restart never touches an old file;
 * a process killed mid-write leaves at most one torn last line. */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';

export class TurnLog {
  readonly dir: string;
  private readonly rotateBytes: number;
  private readonly stem: string;
  private fd: number | null = null;
  private bytes = 0;
  private part = 0;
  currentFile = '';

  constructor(dir: string, rotateBytes: number) {
    this.dir = path.resolve(dir);
    this.rotateBytes = rotateBytes;
    this.stem = `turns-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`;
    mkdirSync(this.dir, { recursive: true });
  }

  /** Appends one record. writeSync returns once the kernel has the bytes: they
   * survive the process being killed (SIGKILL), though not the machine. */
  append(record: unknown): void {
    const line = `${JSON.stringify(record)}\n`;
    const size = Buffer.byteLength(line);
    if (this.fd === null || (this.bytes > 0 && this.bytes + size > this.rotateBytes)) this.rotate();
    let off = 0;
    const buf = Buffer.from(line);
    while (off < buf.length) off += writeSync(this.fd!, buf, off);
    this.bytes += size;
  }

  private rotate(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.part++;
    this.currentFile = path.join(this.dir, `${this.stem}-${String(this.part).padStart(4, '0')}.jsonl`);
    this.fd = openSync(this.currentFile, 'a');
    this.bytes = 0;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** The per-turn log: one JSON line per step, written before the answer leaves
 * the server, in files rotated by size. Each server process writes its own
 * files, named by start time and pid, so a restart never touches an old file;
 * a process killed mid-write leaves at most one torn last line.
 *
 * A full disk (ENOSPC, EDQUOT) never ends the process: the failed record is
 * cut back out of the file, `append` throws LogFullError, and the log stays
 * "full" — refusing appends at once — until a probe of the folder's free space
 * finds room again.
 *
 * Every record is checked against the turn record's schema before it is written:
 * a record that is not one throws TurnRecordError, and nothing of it reaches the file. */
import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  statfsSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { recordProblems, TurnRecordSchema, type TurnRecord } from '../contracts/record.js';

export type FsyncPolicy = 'none' | 'step' | 'batch';

export interface TurnLogOptions {
  rotateBytes: number;
  fsync?: FsyncPolicy;
  fsyncBatchMs?: number;
  /** How often the free space is checked while the disk is full. */
  probeMs?: number;
}

/** The log cannot take a record now; nothing of that record is in the file. */
export class LogFullError extends Error {
  constructor(readonly cause: string) {
    super(`the turn log's disk is full (${cause})`);
    this.name = 'LogFullError';
  }
}

/** The server built a record that is not a turn record (a bug): it is not written. */
export class TurnRecordError extends Error {
  constructor(readonly problems: string) {
    super(`not a turn record: ${problems}`);
    this.name = 'TurnRecordError';
  }
}

/** Free bytes the folder needs before appends are tried again. */
const RESUME_FREE_BYTES = 1024 * 1024;
const FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

export class TurnLog {
  readonly dir: string;
  private readonly opts: Required<TurnLogOptions>;
  private readonly stem: string;
  private fd: number | null = null;
  private bytes = 0;
  private part = 0;
  private dirty = false;
  private syncing = false;
  private syncTimer: NodeJS.Timeout | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  currentFile = '';
  /** Why the log is refusing appends (an errno code), or null while it takes them. */
  fullSince: { code: string; at: number } | null = null;
  /** Records refused because the disk was full, since start. */
  refused = 0;
  onChange: (full: boolean) => void = () => undefined;

  constructor(dir: string, opts: number | TurnLogOptions) {
    this.dir = path.resolve(dir);
    const o = typeof opts === 'number' ? { rotateBytes: opts } : opts;
    this.opts = { fsync: 'none', fsyncBatchMs: 1000, probeMs: 1000, ...o };
    this.stem = `turns-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`;
    try {
      mkdirSync(this.dir, { recursive: true });
    } catch (e) {
      // Started on a full disk: run, and refuse steps until there is space.
      if (!FULL_CODES.has((e as NodeJS.ErrnoException).code ?? '')) throw e;
      this.markFull((e as NodeJS.ErrnoException).code!);
    }
    if (this.opts.fsync === 'batch') {
      this.syncTimer = setInterval(() => this.syncInBackground(), this.opts.fsyncBatchMs);
      this.syncTimer.unref();
    }
  }

  get full(): boolean {
    return this.fullSince !== null;
  }

  /** Appends one record, or throws LogFullError (or TurnRecordError) with the file as it was.
   * writeSync returns once the kernel has the bytes: they survive the process
   * being killed (SIGKILL); `fsync` decides when they also survive the machine. */
  append(record: TurnRecord): void {
    if (this.fullSince) {
      this.refused++;
      throw new LogFullError(this.fullSince.code);
    }
    const checked = TurnRecordSchema.safeParse(record);
    if (!checked.success) throw new TurnRecordError(recordProblems(checked.error));
    const buf = Buffer.from(`${JSON.stringify(record)}\n`);
    try {
      if (this.fd === null || (this.bytes > 0 && this.bytes + buf.length > this.opts.rotateBytes)) this.rotate();
      let off = 0;
      while (off < buf.length) off += writeSync(this.fd!, buf, off);
      if (this.opts.fsync === 'step') fdatasyncSync(this.fd!);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (!FULL_CODES.has(code)) throw e;
      // Cut the partial line back out, so the file holds whole records only.
      if (this.fd !== null) {
        try {
          ftruncateSync(this.fd, this.bytes);
        } catch {
          /* the next successful rotate starts a clean file anyway */
        }
      }
      this.markFull(code);
      this.refused++;
      throw new LogFullError(code);
    }
    this.bytes += buf.length;
    this.dirty = true;
  }

  private markFull(code: string): void {
    this.fullSince = { code, at: Date.now() };
    this.onChange(true);
    this.probeTimer = setInterval(() => {
      if (this.freeBytes() < RESUME_FREE_BYTES) return;
      clearInterval(this.probeTimer!);
      this.probeTimer = null;
      this.fullSince = null;
      this.onChange(false);
    }, this.opts.probeMs);
    this.probeTimer.unref();
  }

  /** Free bytes for an unprivileged writer in the log's folder. */
  freeBytes(): number {
    try {
      const s = statfsSync(this.dir);
      return s.bavail * s.bsize;
    } catch {
      return 0;
    }
  }

  /** The batched policy: fdatasync on libuv's thread pool, never blocking the event
   * loop (a second's worth of records can take tens of ms to reach the disk). */
  private syncInBackground(): void {
    if (!this.dirty || this.fd === null || this.syncing) return;
    this.dirty = false;
    this.syncing = true;
    fdatasync(this.fd, (e) => {
      this.syncing = false;
      if (e && !FULL_CODES.has(e.code ?? '')) console.error(`turn log: fsync failed: ${e.message}`);
      if (e) this.dirty = true;
    });
  }

  /** Makes what was written durable now (before a file is closed). */
  sync(): void {
    if (!this.dirty || this.fd === null) return;
    try {
      fdatasyncSync(this.fd);
      this.dirty = false;
    } catch (e) {
      if (!FULL_CODES.has((e as NodeJS.ErrnoException).code ?? ''))
        console.error(`turn log: fsync failed: ${(e as Error).message}`);
    }
  }

  private rotate(): void {
    if (this.fd !== null) {
      this.sync();
      closeSync(this.fd);
      this.fd = null;
    }
    mkdirSync(this.dir, { recursive: true });
    this.part++;
    this.currentFile = path.join(this.dir, `${this.stem}-${String(this.part).padStart(4, '0')}.jsonl`);
    this.fd = openSync(this.currentFile, 'a');
    this.bytes = 0;
  }

  close(): void {
    if (this.syncTimer) clearInterval(this.syncTimer);
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.sync();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

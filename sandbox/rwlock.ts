/** A readers-writer lock that prefers writers: timing (exclusive) must not
 * starve behind a stream of compile jobs (shared). */
export class RwLock {
  private readers = 0;
  private writer = false;
  private readonly waitingWriters: Array<() => void> = [];
  private readonly waitingReaders: Array<() => void> = [];

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writer || this.waitingWriters.length) await new Promise<void>((r) => this.waitingReaders.push(r));
    else this.readers++;
    try {
      return await fn();
    } finally {
      this.readers--;
      this.wake();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writer || this.readers) await new Promise<void>((r) => this.waitingWriters.push(r));
    else this.writer = true;
    try {
      return await fn();
    } finally {
      this.writer = false;
      this.wake();
    }
  }

  /** What holds the lock now, for the dashboard. */
  state(): { readers: number; writer: boolean; waiting: number } {
    return {
      readers: this.readers,
      writer: this.writer,
      waiting: this.waitingReaders.length + this.waitingWriters.length,
    };
  }

  private wake(): void {
    if (this.writer || this.readers) return;
    const w = this.waitingWriters.shift();
    if (w) {
      this.writer = true;
      w();
      return;
    }
    while (this.waitingReaders.length) {
      this.readers++;
      this.waitingReaders.shift()!();
    }
  }
}

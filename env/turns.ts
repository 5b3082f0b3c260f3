/** Work that takes milliseconds on the event loop (decoding a large frame,
 * extracting the kernel from a large reply) runs one piece per turn of the
 * loop: between two pieces the loop reads every socket, so a client that
 * sends six 512 KiB replies at once delays another client's small frame by one
 * piece, not by six. */
export class OnePerTurn {
  private readonly queue: Array<() => void> = [];
  private scheduled = false;

  run(fn: () => void): void {
    this.queue.push(fn);
    this.schedule();
  }

  /** Resolves in a turn of its own. */
  turn(): Promise<void> {
    return new Promise((resolve) => this.run(resolve));
  }

  get waiting(): number {
    return this.queue.length;
  }

  private schedule(): void {
    if (this.scheduled || this.queue.length === 0) return;
    this.scheduled = true;
    // An immediate set from inside an immediate runs on the next turn, after the loop has polled I/O.
    setImmediate(() => {
      this.scheduled = false;
      const fn = this.queue.shift()!;
      try {
        fn();
      } finally {
        this.schedule();
      }
    });
  }
}

/** Who may hold a connection, and for how long, before saying a successful
 * hello. Anyone who reaches the port can open sockets; none of that may lock
 * out a trainer that has the token. So:
 * - every TCP connection counts against its address's limit;
 * - a connection that has not said a successful hello (raw TCP, an HTTP
 *   request not yet complete, or a WebSocket before hello) is "pending": it is
 *   closed at the hello deadline, and when the pending pool is full the oldest
 *   pending one is closed to make room, so a fresh trainer always gets in;
 * - authentication failures are counted per address and, past a budget,
 *   answered with `rate_limited` and refused at the door. */
import type { Socket } from 'node:net';

export interface AdmissionLimits {
  helloTimeoutMs: number;
  maxPendingConnections: number;
  maxConnectionsPerAddress: number;
  authFailuresPerMinute: number;
}

/** Addresses remembered for throttling, at most (the oldest are forgotten first). */
const MAX_TRACKED_ADDRESSES = 100_000;

export class Admission {
  /** Pending sockets, oldest first, with their hello deadline. */
  private readonly pending = new Map<Socket, { timer: NodeJS.Timeout; onDeadline?: () => void }>();
  private readonly perAddress = new Map<string, number>();
  private readonly failures = new Map<string, { windowStart: number; count: number }>();
  /** Sockets closed by each rule, for /metrics. */
  readonly closed = { perAddress: 0, evicted: 0, helloDeadline: 0, throttled: 0 };

  constructor(private readonly limits: AdmissionLimits) {}

  get pendingCount(): number {
    return this.pending.size;
  }

  /** A new TCP connection: admits it as pending, or destroys it. */
  onConnection(socket: Socket): void {
    const addr = socket.remoteAddress ?? '?';
    const n = this.perAddress.get(addr) ?? 0;
    if (n >= this.limits.maxConnectionsPerAddress) {
      this.closed.perAddress++;
      socket.destroy();
      return;
    }
    this.perAddress.set(addr, n + 1);
    socket.once('close', () => {
      this.settle(socket);
      const left = (this.perAddress.get(addr) ?? 1) - 1;
      if (left <= 0) this.perAddress.delete(addr);
      else this.perAddress.set(addr, left);
    });
    this.pend(socket);
  }

  /** (Again) pending: a new connection, or a keep-alive HTTP connection that upgrades to a WebSocket. */
  pend(socket: Socket): void {
    if (this.pending.has(socket) || socket.destroyed) return;
    if (this.pending.size >= this.limits.maxPendingConnections) {
      const [oldest] = this.pending.keys();
      this.closed.evicted++;
      this.settle(oldest!);
      oldest!.destroy();
    }
    const timer = setTimeout(() => {
      this.closed.helloDeadline++;
      const onDeadline = this.pending.get(socket)?.onDeadline;
      this.settle(socket);
      if (onDeadline) onDeadline();
      else socket.destroy();
    }, this.limits.helloTimeoutMs);
    timer.unref();
    this.pending.set(socket, { timer });
  }

  /** A WebSocket is told why it is closed at the deadline, instead of being cut. */
  onDeadline(socket: Socket, fn: () => void): void {
    const p = this.pending.get(socket);
    if (p) p.onDeadline = fn;
  }

  /** The socket is no longer pending: it said a successful hello, or it carries
   * an HTTP request (which keep-alive and request timeouts govern from here). */
  settle(socket: Socket): void {
    const p = this.pending.get(socket);
    if (p === undefined) return;
    clearTimeout(p.timer);
    this.pending.delete(socket);
  }

  /** True while this address has spent its budget of authentication failures. */
  throttled(addr: string, now = Date.now()): boolean {
    const f = this.failures.get(addr);
    return f !== undefined && now - f.windowStart < 60_000 && f.count >= this.limits.authFailuresPerMinute;
  }

  /** Counts one failure; returns the milliseconds until the address may try again, 0 if it still may. */
  authFailed(addr: string, now = Date.now()): number {
    let f = this.failures.get(addr);
    if (!f || now - f.windowStart >= 60_000) {
      this.failures.delete(addr);
      f = { windowStart: now, count: 0 };
      this.failures.set(addr, f);
      if (this.failures.size > MAX_TRACKED_ADDRESSES) this.failures.delete(this.failures.keys().next().value!);
    }
    f.count++;
    return f.count >= this.limits.authFailuresPerMinute ? f.windowStart + 60_000 - now : 0;
  }

  retryAfterMs(addr: string, now = Date.now()): number {
    const f = this.failures.get(addr);
    return f ? Math.max(0, f.windowStart + 60_000 - now) : 0;
  }

  close(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
  }
}

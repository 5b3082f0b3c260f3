/** Sessions outlive their connection for a grace period: a client that
 * reconnects with its resume token gets its episodes back, and the answers
 * that finished while it was away. */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Encoding } from './codec.js';

/** Where a session's answers go while it is connected. */
export interface Sink {
  send(value: unknown, encoding: Encoding): void;
  close(code: number, reason: string): void;
}

/** A finished request's answer, kept to re-send when the same request is retried. */
interface Replay {
  fingerprint: string;
  answer: unknown;
}

export class Session {
  readonly id = randomUUID();
  readonly resumeToken = randomBytes(24).toString('base64url');
  sink: Sink | null = null;
  encoding: Encoding = 'json';
  readonly episodes = new Set<string>();
  /** Steps in flight, by request id, with a fingerprint of the request. */
  readonly inflight = new Map<string, { fingerprint: string; episode: string; abort: AbortController }>();
  /** Answers that could not be delivered while disconnected, oldest first. */
  private readonly outbox: Array<{ value: unknown; encoding: Encoding }> = [];
  private readonly replay = new Map<string, Replay>();
  graceTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly replayLimit: number,
    private readonly outboxLimit: number,
  ) {}

  /** Sends now, or keeps it for the next connection. */
  deliver(value: unknown, encoding: Encoding): void {
    if (this.sink) this.sink.send(value, encoding);
    else {
      this.outbox.push({ value, encoding });
      if (this.outbox.length > this.outboxLimit) this.outbox.shift();
    }
  }

  attach(sink: Sink): void {
    this.sink = sink;
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = null;
    for (const { value, encoding } of this.outbox.splice(0)) sink.send(value, encoding);
  }

  remember(key: string, fingerprint: string, answer: unknown): void {
    this.replay.delete(key);
    this.replay.set(key, { fingerprint, answer });
    if (this.replay.size > this.replayLimit) this.replay.delete(this.replay.keys().next().value!);
  }

  /** The earlier answer to this exact request, if it finished. */
  replayFor(key: string, fingerprint: string): unknown | undefined {
    const r = this.replay.get(key);
    return r && r.fingerprint === fingerprint ? r.answer : undefined;
  }
}

export class SessionRegistry {
  private readonly byId = new Map<string, Session>();
  private readonly byToken = new Map<string, Session>();

  constructor(
    private readonly graceMs: number,
    private readonly replayLimit: number,
    private readonly onExpire: (s: Session) => void,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  create(): Session {
    const s = new Session(this.replayLimit, 10_000);
    this.byId.set(s.id, s);
    this.byToken.set(s.resumeToken, s);
    return s;
  }

  byResumeToken(token: string): Session | undefined {
    return this.byToken.get(token);
  }

  /** The connection went away: keep the session for the grace period. */
  detach(s: Session): void {
    s.sink = null;
    if (s.graceTimer) clearTimeout(s.graceTimer);
    s.graceTimer = setTimeout(() => this.expire(s), this.graceMs);
    s.graceTimer.unref();
  }

  expire(s: Session): void {
    if (s.graceTimer) clearTimeout(s.graceTimer);
    this.byId.delete(s.id);
    this.byToken.delete(s.resumeToken);
    this.onExpire(s);
  }

  all(): IterableIterator<Session> {
    return this.byId.values();
  }
}

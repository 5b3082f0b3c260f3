/** Sessions outlive their connection for a grace period: a client that
 * reconnects with its resume token gets its episodes back, the answers that
 * finished while it was away, and — for any step it sends again under the same
 * request id — the answer it already had, never a second evaluation. */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Encoding } from './codec.js';

/** Where a session's answers go while it is connected. */
export interface Sink {
  send(value: unknown, encoding: Encoding): void;
  close(code: number, reason: string): void;
}

/** Results kept for a disconnected session, at most; the rest wait in the replay store. */
const OUTBOX_LIMIT = 10_000;
/** Request ids whose answers left the replay store, remembered per session at most. */
const EXPIRED_IDS_LIMIT = 1_000_000;

export class Session {
  readonly id = randomUUID();
  readonly resumeToken = randomBytes(24).toString('base64url');
  sink: Sink | null = null;
  encoding: Encoding = 'json';
  readonly episodes = new Set<string>();
  /** Episodes of this session not yet finished (they count against its quota). */
  openEpisodes = 0;
  /** Steps in flight, by request id, with a fingerprint of the request. */
  readonly inflight = new Map<string, { fingerprint: string; episode: string; abort: AbortController }>();
  /** Results that finished while disconnected, oldest first. */
  private readonly outbox: Array<{ value: unknown; encoding: Encoding }> = [];
  /** Request ids (with their fingerprint) whose answer was evicted from the replay store. */
  readonly expired = new Map<string, string>();
  graceTimer: NodeJS.Timeout | null = null;

  constructor(readonly address: string) {}

  /** Sends now, or keeps a result for the next connection (progress is not kept:
   * it is stale by then). */
  deliver(value: unknown, encoding: Encoding, isResult = true): void {
    if (this.sink) this.sink.send(value, encoding);
    else if (isResult) {
      this.outbox.push({ value, encoding });
      if (this.outbox.length > OUTBOX_LIMIT) this.outbox.shift();
    }
  }

  attach(sink: Sink): void {
    this.sink = sink;
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = null;
    for (const { value, encoding } of this.outbox.splice(0)) sink.send(value, encoding);
  }

  markExpired(key: string, fingerprint: string): void {
    this.expired.set(key, fingerprint);
    if (this.expired.size > EXPIRED_IDS_LIMIT) this.expired.delete(this.expired.keys().next().value!);
  }
}

interface Replay {
  session: Session;
  key: string;
  fingerprint: string;
  answer: unknown;
  bytes: number;
  at: number;
}

/** Every step answer, over all sessions, oldest first: bounded by bytes and by
 * age, never by count. A session's answers leave with it. */
export class ReplayStore {
  private readonly entries = new Map<string, Replay>();
  /** Each session's live entries, so that they leave with it. */
  private readonly bySession = new Map<Session, Set<string>>();
  private bytes = 0;
  evicted = 0;

  constructor(
    readonly maxBytes: number,
    readonly maxAgeMs: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }
  get totalBytes(): number {
    return this.bytes;
  }

  remember(session: Session, key: string, fingerprint: string, answer: unknown, bytes: number, now = Date.now()): void {
    const k = `${session.id}\0${key}`;
    this.drop(k);
    this.entries.set(k, { session, key, fingerprint, answer, bytes, at: now });
    let mine = this.bySession.get(session);
    if (!mine) this.bySession.set(session, (mine = new Set()));
    mine.add(k);
    this.bytes += bytes;
    this.trim(now);
  }

  /** The earlier answer to this exact request, if it is still kept. */
  replayFor(session: Session, key: string, fingerprint: string, now = Date.now()): unknown | undefined {
    this.trim(now);
    const r = this.entries.get(`${session.id}\0${key}`);
    return r && r.fingerprint === fingerprint ? r.answer : undefined;
  }

  /** The fingerprint of the request whose answer is kept under this id, if any. */
  fingerprintOf(session: Session, key: string, now = Date.now()): string | undefined {
    this.trim(now);
    return this.entries.get(`${session.id}\0${key}`)?.fingerprint;
  }

  /** A session expired: its answers go. */
  forget(session: Session): void {
    for (const k of this.bySession.get(session) ?? []) this.drop(k);
    this.bySession.delete(session);
  }

  private drop(k: string): void {
    const r = this.entries.get(k);
    if (!r) return;
    this.entries.delete(k);
    this.bySession.get(r.session)?.delete(k);
    this.bytes -= r.bytes;
  }

  /** Oldest first out while over the byte bound or past the age bound. */
  private trim(now: number): void {
    for (const [k, r] of this.entries) {
      if (this.bytes <= this.maxBytes && now - r.at <= this.maxAgeMs) break;
      this.drop(k);
      this.evicted++;
      r.session.markExpired(r.key, r.fingerprint);
    }
  }
}

export class SessionRegistry {
  private readonly byId = new Map<string, Session>();
  private readonly byToken = new Map<string, Session>();
  private readonly perAddress = new Map<string, number>();

  constructor(
    private readonly graceMs: number,
    readonly replay: ReplayStore,
    private readonly onExpire: (s: Session) => void,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  sessionsOf(address: string): number {
    return this.perAddress.get(address) ?? 0;
  }

  create(address: string): Session {
    const s = new Session(address);
    this.byId.set(s.id, s);
    this.byToken.set(s.resumeToken, s);
    this.perAddress.set(address, this.sessionsOf(address) + 1);
    return s;
  }

  get(id: string): Session | undefined {
    return this.byId.get(id);
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
    if (!this.byId.delete(s.id)) return;
    this.byToken.delete(s.resumeToken);
    const left = this.sessionsOf(s.address) - 1;
    if (left <= 0) this.perAddress.delete(s.address);
    else this.perAddress.set(s.address, left);
    this.replay.forget(s);
    this.onExpire(s);
  }

  all(): IterableIterator<Session> {
    return this.byId.values();
  }
}

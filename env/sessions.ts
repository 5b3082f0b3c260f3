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
  /** The answer as UTF-8 JSON, outside the heap: it costs what it counts, where the object
   * graph of an answer costs three to four times its JSON (256 MiB of JSON held 1 GiB of heap). */
  json: Buffer;
  at: number;
}

/** Every step answer, over all sessions: bounded by bytes and by age, never by count. Past
 * the age bound the oldest go first; past the byte bound the session holding the most bytes
 * gives up its oldest first, so that one client's flood evicts its own answers before
 * another trainer's. A session's answers leave with it. */
export class ReplayStore {
  private readonly entries = new Map<string, Replay>();
  /** Each session's live entries, oldest first, and their bytes. */
  private readonly bySession = new Map<Session, { keys: Set<string>; bytes: number }>();
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

  remember(session: Session, key: string, fingerprint: string, json: string, now = Date.now()): void {
    const k = `${session.id}\0${key}`;
    this.drop(k);
    // A buffer of its own, not a slice of the shared pool: a kept slice would keep its whole 8 KiB slab.
    const buf = Buffer.allocUnsafeSlow(Buffer.byteLength(json));
    buf.write(json);
    const r = { session, key, fingerprint, json: buf, at: now };
    this.entries.set(k, r);
    let mine = this.bySession.get(session);
    if (!mine) this.bySession.set(session, (mine = { keys: new Set(), bytes: 0 }));
    mine.keys.add(k);
    mine.bytes += r.json.length;
    this.bytes += r.json.length;
    this.trim(now);
  }

  /** The earlier answer to this exact request, if it is still kept. */
  replayFor(session: Session, key: string, fingerprint: string, now = Date.now()): unknown | undefined {
    this.trim(now);
    const r = this.entries.get(`${session.id}\0${key}`);
    return r && r.fingerprint === fingerprint ? JSON.parse(r.json.toString('utf8')) : undefined;
  }

  /** The fingerprint of the request whose answer is kept under this id, if any. */
  fingerprintOf(session: Session, key: string, now = Date.now()): string | undefined {
    this.trim(now);
    return this.entries.get(`${session.id}\0${key}`)?.fingerprint;
  }

  /** A session expired: its answers go. */
  forget(session: Session): void {
    for (const k of this.bySession.get(session)?.keys ?? []) this.drop(k);
    this.bySession.delete(session);
  }

  private drop(k: string): Replay | undefined {
    const r = this.entries.get(k);
    if (!r) return undefined;
    this.entries.delete(k);
    const mine = this.bySession.get(r.session);
    if (mine) {
      mine.keys.delete(k);
      mine.bytes -= r.json.length;
    }
    this.bytes -= r.json.length;
    return r;
  }

  private evict(k: string): void {
    const r = this.drop(k);
    if (!r) return;
    this.evicted++;
    r.session.markExpired(r.key, r.fingerprint);
  }

  private trim(now: number): void {
    for (const [k, r] of this.entries) {
      if (now - r.at <= this.maxAgeMs) break;
      this.evict(k);
    }
    while (this.bytes > this.maxBytes) {
      let biggest: { keys: Set<string>; bytes: number } | undefined;
      for (const mine of this.bySession.values()) if (!biggest || mine.bytes > biggest.bytes) biggest = mine;
      const [oldest] = biggest!.keys;
      this.evict(oldest!);
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

/** The TypeScript client of protocol v1: typed calls, many episodes over one
 * connection, progress callbacks, cancellation, and automatic reconnection
 * that resumes the session. MessagePack by default. */
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { z } from 'zod';
import {
  AddressedSchema,
  CancelAnswerSchema,
  CloseAnswerSchema,
  EpisodeSnapshotSchema,
  FrameSchema,
  HelloAnswerSchema,
  PingAnswerSchema,
  problemsOf,
  ResetAnswerSchema,
  StepAnswerSchema,
  TaskListSchema,
  type EpisodeSnapshot,
  type Progress,
  type ResetEpisode,
  type StepResult,
  type TaskList,
} from './answers.js';

// The answers' types, inferred from their schemas (./answers.ts).
export type {
  ChatMessage,
  EpisodeSnapshot,
  HelloAnswer,
  Observation,
  Progress,
  ResetEpisode,
  StepResult,
  TaskList,
} from './answers.js';

export type Encoding = 'msgpack' | 'json';

/** The protocol's error codes (docs/protocol.md), and whether retrying may help. */
export const ERROR_CODES = {
  invalid_message: false,
  unknown_op: false,
  unauthorized: false,
  unknown_episode: false,
  unknown_task: false,
  unknown_taskset: false,
  unknown_step: false,
  episode_done: false,
  step_in_flight: true,
  busy: true,
  rate_limited: true,
  replay_expired: false,
  storage_full: true,
  timeout: true,
  too_large: false,
  internal: true,
} as const;
export type ErrorCode = keyof typeof ERROR_CODES;

/** An error the server answered with; `code` is one of the protocol's error codes (a newer server may send others). */
export class AnvilProtocolError extends Error {
  constructor(
    readonly code: ErrorCode | (string & {}),
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'AnvilProtocolError';
  }
}

/** The connection dropped while a request that cannot be safely repeated was in flight. */
export class ConnectionLostError extends Error {
  constructor(op: string) {
    super(`the connection was lost while "${op}" was in flight; it may or may not have taken effect`);
    this.name = 'ConnectionLostError';
  }
}

/** The server sent a frame for a request that is not what protocol v1 answers: the request
 * fails with this, naming what is wrong, and the connection carries on. */
export class MalformedAnswerError extends Error {
  constructor(
    readonly op: string,
    readonly id: number,
    /** Each problem as `path: what is wrong`, the first few. */
    readonly problems: string[],
  ) {
    super(`the answer to "${op}" (request ${id}) is not one of protocol v1: ${problems.join('; ')}`);
    this.name = 'MalformedAnswerError';
  }
}

export interface ClientOptions {
  token?: string;
  encoding?: Encoding;
  /** Reconnect and resume after an unexpected close (default true). */
  reconnect?: boolean;
  /** Give up reconnecting after this long (default 60 s). */
  reconnectTimeoutMs?: number;
  clientName?: string;
}

interface Pending {
  message: Record<string, unknown>;
  /** Parses the answer with the request's schema, then settles the request. */
  answer: (frame: Record<string, unknown>) => void;
  reject: (e: Error) => void;
  onProgress?: (p: Progress) => void;
  /** Safe to send again after a reconnect: steps (the server never evaluates one twice) and reads. */
  resend: boolean;
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export class AnvilClient {
  session = '';
  resumeToken = '';
  serverInfo: Record<string, unknown> = {};
  private ws!: WebSocket;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closedByUser = false;
  private reconnecting: Promise<void> | null = null;

  private constructor(
    readonly url: string,
    private readonly opts: Required<Omit<ClientOptions, 'token'>> & { token?: string },
  ) {}

  static async connect(url: string, options: ClientOptions = {}): Promise<AnvilClient> {
    const c = new AnvilClient(url, {
      encoding: options.encoding ?? 'msgpack',
      reconnect: options.reconnect ?? true,
      reconnectTimeoutMs: options.reconnectTimeoutMs ?? 60_000,
      clientName: options.clientName ?? 'anvil-ts',
      token: options.token,
    });
    try {
      await c.open(false);
    } catch (e) {
      await c.close(); // a refused or malformed hello: nothing to reconnect to
      throw e;
    }
    return c;
  }

  private async open(resume: boolean): Promise<void> {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    ws.on('close', () => this.onClose(ws));
    ws.on('error', () => undefined);
    const hello = await this.request(
      {
        op: 'hello',
        protocol: 1,
        token: this.opts.token,
        client: this.opts.clientName,
        ...(resume && this.resumeToken ? { resume: this.resumeToken } : {}),
      },
      HelloAnswerSchema,
      { resend: false },
    );
    if (resume && !hello.resumed) {
      for (const [id, p] of this.pending)
        if (p.message.op !== 'hello') {
          this.pending.delete(id);
          p.reject(new ConnectionLostError(String(p.message.op)));
        }
    }
    this.session = hello.session;
    this.resumeToken = hello.resumeToken;
    this.serverInfo = hello;
    if (resume) for (const [, p] of this.pending) if (p.resend) this.sendRaw(p.message);
  }

  private onClose(ws: WebSocket): void {
    if (ws !== this.ws || this.closedByUser) return;
    for (const [id, p] of this.pending)
      if (!p.resend) {
        this.pending.delete(id);
        p.reject(new ConnectionLostError(String(p.message.op)));
      }
    if (!this.opts.reconnect) {
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(new ConnectionLostError(String(p.message.op)));
      }
      return;
    }
    this.reconnecting ??= this.reconnectLoop().finally(() => (this.reconnecting = null));
  }

  private async reconnectLoop(): Promise<void> {
    const deadline = Date.now() + this.opts.reconnectTimeoutMs;
    let delay = 100;
    while (!this.closedByUser) {
      try {
        await this.open(true);
        return;
      } catch {
        if (Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5000);
      }
    }
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new ConnectionLostError(String(p.message.op)));
    }
  }

  /** A frame that does not decode, or answers no pending request, is ignored; one that
   * answers a request but does not parse fails that request. */
  private onMessage(data: Buffer, isBinary: boolean): void {
    let decoded: unknown;
    try {
      decoded = isBinary ? packr.unpack(data) : JSON.parse(data.toString('utf8'));
    } catch {
      return;
    }
    const addressed = AddressedSchema.safeParse(decoded);
    if (!addressed.success) return;
    const { id } = addressed.data;
    const p = this.pending.get(id);
    if (!p) return;
    const frame = FrameSchema.safeParse(decoded);
    if (!frame.success) {
      this.pending.delete(id);
      p.reject(new MalformedAnswerError(String(p.message.op), id, problemsOf(frame.error)));
    } else if (frame.data.ok === false) {
      const { code, message, retryable, retryAfterMs } = frame.data.error;
      this.pending.delete(id);
      p.reject(new AnvilProtocolError(code, message, retryable, retryAfterMs));
    } else if (frame.data.event === 'progress') {
      p.onProgress?.({ stage: frame.data.stage, queuePosition: frame.data.queuePosition });
    } else {
      this.pending.delete(id);
      p.answer(frame.data);
    }
  }

  private sendRaw(message: Record<string, unknown>): void {
    if (this.ws.readyState !== WebSocket.OPEN) return; // sent again on reconnect, when resendable
    this.ws.send(this.opts.encoding === 'msgpack' ? packr.pack(message) : JSON.stringify(message), {
      binary: this.opts.encoding === 'msgpack',
    });
  }

  /** Sends a request; resolves with its answer parsed by `schema`, or rejects with
   * MalformedAnswerError where the answer does not parse. */
  private request<S extends z.ZodType>(
    body: Record<string, unknown> & { op: string },
    schema: S,
    o: { resend: boolean; onProgress?: (p: Progress) => void; id?: number },
  ): Promise<z.infer<S>> {
    const id = o.id ?? this.nextId++;
    const message = Object.fromEntries(Object.entries({ id, ...body }).filter(([, v]) => v !== undefined));
    return new Promise((resolve, reject) => {
      const answer = (frame: Record<string, unknown>) => {
        const parsed = schema.safeParse(frame);
        if (parsed.success) resolve(parsed.data);
        else reject(new MalformedAnswerError(body.op, id, problemsOf(parsed.error)));
      };
      this.pending.set(id, { message, answer, reject, onProgress: o.onProgress, resend: o.resend });
      this.sendRaw(message);
    });
  }

  /** Waits for a reconnection in progress, so calls made meanwhile are not lost. */
  private async ready(): Promise<void> {
    if (this.reconnecting) await this.reconnecting;
  }

  async tasks(opts: { taskset?: string; split?: 'train' | 'eval' } = {}): Promise<TaskList> {
    await this.ready();
    return this.request({ op: 'tasks', ...opts }, TaskListSchema, { resend: true });
  }

  /** One episode, or a group of `group.size` episodes sharing task and seed. */
  async reset(
    opts: {
      task?: string;
      taskset?: string;
      split?: 'train' | 'eval';
      seed?: number;
      group?: { id?: string; size?: number };
      options?: { maxTurns?: number; reward?: Record<string, unknown> };
    } = {},
  ): Promise<ResetEpisode[]> {
    await this.ready();
    return (await this.request({ op: 'reset', ...opts }, ResetAnswerSchema, { resend: false })).episodes;
  }

  /** Sends the model's reply; resolves with the result. Aborting the signal cancels the step. */
  async step(
    episode: string,
    action: string,
    opts: { meta?: unknown; onProgress?: (p: Progress) => void; signal?: AbortSignal } = {},
  ): Promise<StepResult> {
    await this.ready();
    const id = this.nextId++;
    const onAbort = () =>
      void this.request({ op: 'cancel', target: id }, CancelAnswerSchema, { resend: false }).catch(() => undefined);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await this.request({ op: 'step', episode, action, meta: opts.meta }, StepAnswerSchema, {
        resend: true,
        onProgress: opts.onProgress,
        id,
      });
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  async state(episode: string): Promise<EpisodeSnapshot> {
    await this.ready();
    return this.request({ op: 'state', episode }, EpisodeSnapshotSchema, { resend: true });
  }

  async closeEpisode(episode: string): Promise<void> {
    await this.ready();
    await this.request({ op: 'close', episode }, CloseAnswerSchema, { resend: false });
  }

  async ping(): Promise<number> {
    await this.ready();
    return (await this.request({ op: 'ping' }, PingAnswerSchema, { resend: true })).time;
  }

  /** Drops the connection as a network failure would (for tests of resume). */
  dropConnection(): void {
    this.ws.terminate();
  }

  async close(): Promise<void> {
    this.closedByUser = true;
    this.ws.close();
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new ConnectionLostError(String(p.message.op)));
    }
  }
}

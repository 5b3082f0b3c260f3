/** The TypeScript client of protocol v1: typed calls, many episodes over one
 * connection, progress callbacks, cancellation, and automatic reconnection
 * that resumes the session. MessagePack by default. */
import { Packr } from 'msgpackr';
import WebSocket from 'ws';

export type Encoding = 'msgpack' | 'json';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}
export interface Observation {
  messages: ChatMessage[];
}

export interface ResetEpisode {
  episode: string;
  group: string;
  index: number;
  observation: Observation;
  info: { task: string; taskVersion: number; taskset: string; split: string; seed: number; maxTurns: number };
}

export interface StepResult {
  episode: string;
  observation: Observation;
  reward: number;
  terminated: boolean;
  truncated: boolean;
  reason?: 'max_turns' | 'solved' | 'cancelled' | 'env_error' | 'invalid_action';
  info: {
    turn: number;
    mask: boolean;
    outcome: string;
    task: string;
    components: Record<string, number>;
    eval: {
      outcome: string;
      correct: boolean;
      speedup: number | null;
      profileShare: number | null;
      flags: { kind: string; evidence: string }[];
      message: string;
      cached: boolean;
      stages: { name: string; status: string; ms: number }[];
    } | null;
  };
}

export interface Progress {
  stage: string;
  queuePosition?: number;
}

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
  resolve: (v: any) => void;
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
    await c.open(false);
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

  private onMessage(data: Buffer, isBinary: boolean): void {
    let msg: any;
    try {
      msg = isBinary ? packr.unpack(data) : JSON.parse(data.toString('utf8'));
    } catch {
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.ok === false) {
      this.pending.delete(msg.id);
      p.reject(new AnvilProtocolError(msg.error.code, msg.error.message, msg.error.retryable, msg.error.retryAfterMs));
    } else if (msg.event === 'progress') {
      p.onProgress?.({ stage: msg.stage, queuePosition: msg.queuePosition });
    } else {
      this.pending.delete(msg.id);
      p.resolve(msg);
    }
  }

  private sendRaw(message: Record<string, unknown>): void {
    if (this.ws.readyState !== WebSocket.OPEN) return; // sent again on reconnect, when resendable
    this.ws.send(this.opts.encoding === 'msgpack' ? packr.pack(message) : JSON.stringify(message), {
      binary: this.opts.encoding === 'msgpack',
    });
  }

  private request(
    body: Record<string, unknown>,
    o: { resend: boolean; onProgress?: (p: Progress) => void; id?: number },
  ): Promise<any> {
    const id = o.id ?? this.nextId++;
    const message = Object.fromEntries(Object.entries({ id, ...body }).filter(([, v]) => v !== undefined));
    return new Promise((resolve, reject) => {
      this.pending.set(id, { message, resolve, reject, onProgress: o.onProgress, resend: o.resend });
      this.sendRaw(message);
    });
  }

  /** Waits for a reconnection in progress, so calls made meanwhile are not lost. */
  private async ready(): Promise<void> {
    if (this.reconnecting) await this.reconnecting;
  }

  async tasks(
    opts: { taskset?: string; split?: 'train' | 'eval' } = {},
  ): Promise<{ taskset: string; tasks: Array<Record<string, unknown>> }> {
    await this.ready();
    return this.request({ op: 'tasks', ...opts }, { resend: true });
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
    return (await this.request({ op: 'reset', ...opts }, { resend: false })).episodes;
  }

  /** Sends the model's reply; resolves with the result. Aborting the signal cancels the step. */
  async step(
    episode: string,
    action: string,
    opts: { meta?: unknown; onProgress?: (p: Progress) => void; signal?: AbortSignal } = {},
  ): Promise<StepResult> {
    await this.ready();
    const id = this.nextId++;
    const onAbort = () => void this.request({ op: 'cancel', target: id }, { resend: false }).catch(() => undefined);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await this.request(
        { op: 'step', episode, action, meta: opts.meta },
        { resend: true, onProgress: opts.onProgress, id },
      );
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  async state(episode: string): Promise<Record<string, unknown>> {
    await this.ready();
    return this.request({ op: 'state', episode }, { resend: true });
  }

  async closeEpisode(episode: string): Promise<void> {
    await this.ready();
    await this.request({ op: 'close', episode }, { resend: false });
  }

  async ping(): Promise<number> {
    await this.ready();
    return (await this.request({ op: 'ping' }, { resend: true })).time;
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

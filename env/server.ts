/** The server: fastify for HTTP, `ws` for the socket at /v1/ws. Frames are
 * decoded and validated here, once; the Gym handles typed messages. A bad
 * frame gets a typed error and the connection stays open. */
import Fastify, { type FastifyInstance } from 'fastify';
import type { IncomingMessage } from 'node:http';
import os from 'node:os';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import type { EvaluationService } from '../sandbox/evaluator.js';
import { QueueEvaluator } from '../sandbox/queue.js';
import { evaluationService } from '../sandbox/service.js';
import { httpStatus, protocolErrorOf } from '../contracts/errors.js';
import { loadTaskSet, type TaskSet } from '../tasks/loader.js';
import { PACKAGE_VERSION } from '../tasks/paths.js';
import { Admission } from './admission.js';
import { presentedToken, TokenGate } from './auth.js';
import { guardHttp, typedHttpErrors } from './http-guard.js';
import { decode, encode, type Encoding } from './codec.js';
import { ConnSink, DeferredFrames, raiseFrameLimit, refuse, type Conn } from './connection.js';
import { dashboardRoutes } from './dashboard.js';
import { DEFAULT_SERVER_CONFIG, ServerConfigSchema, type ServerConfig } from './config.js';
import { ProtocolError } from './errors.js';
import { Gym } from './gym.js';
import { TurnLog } from './log.js';
import { Metrics } from './metrics.js';
import { OpenEnvDoor } from './openenv.js';
import type { ClientMessage, RequestId } from './protocol.js';

export type ServerOptions = Partial<ServerConfig>;

/** Replies longer than this are extracted in a turn of the event loop of their own. */
const LARGE_REPLY_CHARS = 64 * 1024;

/** The body of POST /v1/evaluate: a task and exactly one of a bare kernel or a model reply. */
const EvaluateBody = z
  .object({
    task: z.string(),
    taskset: z.string().optional(),
    code: z.string().optional(),
    reply: z.string().optional(),
    seed: z.number().int().safe().optional(),
  })
  .strict()
  .refine((b) => (b.code === undefined) !== (b.reply === undefined), 'give exactly one of code or reply');

export class AnvilServer {
  readonly config: ServerConfig;
  readonly metrics = new Metrics();
  readonly app: FastifyInstance;
  readonly gym: Gym;
  readonly evaluator: EvaluationService;
  readonly log: TurnLog;
  /** OpenEnv's protocol at /ws and /reset, /step, /state, /schema, /health, /metadata. */
  readonly openenv: OpenEnvDoor;
  private readonly wss: WebSocketServer;
  private readonly conns = new Set<Conn>();
  private readonly deferred: DeferredFrames;
  /** Connections that said a successful hello. */
  private helloed = 0;
  readonly admission: Admission;
  private readonly gate: TokenGate;
  private pingTimer: NodeJS.Timeout | null = null;
  private readonly started = Date.now();

  constructor(opts: ServerOptions = {}) {
    this.config = Object.freeze(
      ServerConfigSchema.parse({ ...DEFAULT_SERVER_CONFIG, poolSize: os.availableParallelism(), ...opts }),
    );
    const sets = new Map<string, TaskSet>();
    const set = loadTaskSet(this.config.taskset);
    sets.set(this.config.taskset, set);
    if (set.manifest.id !== this.config.taskset) sets.set(set.manifest.id, set);
    this.evaluator = evaluationService(set.manifest.backend, this.config);
    if (this.evaluator instanceof QueueEvaluator)
      this.evaluator.onFinished = (worker, waitedMs) => {
        this.metrics.queueWait.observe(waitedMs / 1000);
        this.metrics.workerJobs.inc({ worker });
      };
    for (const t of set.tasks.values()) this.evaluator.warm(t);
    this.log = new TurnLog(this.config.logDir, {
      rotateBytes: this.config.logRotateBytes,
      fsync: this.config.logFsync,
      fsyncBatchMs: this.config.logFsyncBatchMs,
      probeMs: this.config.logProbeMs,
    });
    this.metrics.logWritable.set(1);
    this.log.onChange = (full) => {
      this.metrics.logWritable.set(full ? 0 : 1);
      console.error(
        full
          ? `anvil: the turn log's disk is full (${this.log.fullSince?.code}); refusing steps until there is space`
          : 'anvil: the turn log has space again; taking steps',
      );
    };
    this.admission = new Admission(this.config);
    this.gate = new TokenGate(this.config.token, this.admission);
    this.gym = new Gym(this.config, sets, this.evaluator, this.log, this.metrics);
    this.deferred = new DeferredFrames(this.gym.heavy, 2 * this.config.maxFrameBytes);
    this.openenv = new OpenEnvDoor(
      this.gym,
      this.config,
      this.admission,
      (h, q, address) => this.authorized(h, q, address),
      () => !this.log.full && this.evaluator.available(),
    );
    // Idle keep-alive HTTP connections go after 5 s; a request's headers must be complete within the hello deadline.
    this.app = Fastify({ logger: false, bodyLimit: this.config.maxFrameBytes, keepAliveTimeout: 5000 });
    this.app.server.headersTimeout = this.config.helloTimeoutMs;
    // A request must arrive whole within 30 s (answering may take longer), and sockets of all kinds
    // together stay within a bound, so descriptors never run out.
    this.app.server.requestTimeout = 30_000;
    this.app.server.maxConnections = this.config.maxConnections + this.config.maxPendingConnections + 1024;
    this.app.server.on('connection', (socket: Socket) => this.admission.onConnection(socket));
    guardHttp(this.app, this.admission, this.gate);
    typedHttpErrors(this.app);
    // Before hello, frames are small; a successful hello raises the limit (see raiseFrameLimit).
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.config.preHelloFrameBytes });
    this.routes();
  }

  /** With `address`, a wrong token (and a missing one, when `missingCounts`) counts against it. */
  private authorized(header: string | undefined, query: unknown, address?: string, missingCounts = true): boolean {
    const presented = presentedToken(header, query);
    return address === undefined ? this.gate.matches(presented) : this.gate.check(address, presented, missingCounts);
  }

  private routes(): void {
    const app = this.app;
    app.get('/healthz', async (req) => {
      // Without the token: liveness only, nothing about the host or the run.
      if (!this.authorized(req.headers.authorization, req.query, req.ip, false)) return { ok: true };
      // ?gc=1 collects garbage first when node runs with --expose-gc: for memory benchmarks.
      if ((req.query as { gc?: string }).gc === '1') (globalThis as { gc?: () => void }).gc?.();
      return { ...this.health(), workers: await this.evaluator.workers() };
    });
    this.apiRoutes();
    dashboardRoutes(app, {
      gym: this.gym,
      authorized: (h, q, address) => this.authorized(h, q, address),
      health: () => this.health(),
      workers: () => this.evaluator.workers(),
    });
    this.openenv.routes(app);
  }

  private health() {
    return {
      ok: true,
      version: PACKAGE_VERSION,
      uptimeS: Math.round((Date.now() - this.started) / 1000),
      sandbox: this.evaluator.mode,
      connections: this.conns.size,
      pendingConnections: this.admission.pendingCount,
      closedByAdmission: this.admission.closed,
      sessions: this.gym.sessions.size,
      episodes: this.gym.openEpisodes,
      replay: {
        answers: this.gym.sessions.replay.size,
        bytes: this.gym.sessions.replay.totalBytes,
        evicted: this.gym.sessions.replay.evicted,
      },
      pendingSteps: this.gym.pendingSteps,
      ...(this.config.redis ? { queue: { reachable: this.evaluator.available() } } : {}),
      ...(this.evaluator.devices ? { devices: this.evaluator.devices() } : {}),
      logFile: this.log.currentFile || null,
      log: {
        writable: !this.log.full,
        ...(this.log.fullSince
          ? { error: this.log.fullSince.code, fullSince: new Date(this.log.fullSince.at).toISOString() }
          : {}),
        refused: this.log.refused,
        fsync: this.config.logFsync,
      },
      memory: process.memoryUsage(),
    };
  }

  private apiRoutes(): void {
    const app = this.app;
    app.get('/metrics', async (_req, reply) => {
      await this.refreshGauges();
      reply.header('content-type', this.metrics.registry.contentType);
      return this.metrics.registry.metrics();
    });
    app.get('/v1/tasks', async (req, reply) => {
      const q = req.query as { taskset?: string; split?: 'train' | 'eval' };
      try {
        // As the `tasks` op, which needs a successful hello: behind the token.
        if (!this.authorized(req.headers.authorization, req.query, req.ip))
          throw new ProtocolError('unauthorized', 'a bearer token is required');
        return this.gym.tasks({
          id: 0,
          op: 'tasks',
          taskset: q.taskset,
          split: q.split === 'train' || q.split === 'eval' ? q.split : undefined,
        });
      } catch (e) {
        return this.httpError(reply, e);
      }
    });
    this.evaluateRoute(app);
    app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
  }

  /** The gauges read at a scrape of /metrics, brought up to date first. */
  private async refreshGauges(): Promise<void> {
    if (this.evaluator instanceof QueueEvaluator && this.evaluator.available()) {
      for (const [state, n] of Object.entries(await this.evaluator.counts().catch(() => ({}))))
        this.metrics.queueJobs.set({ state }, n);
    }
    for (const d of this.evaluator.devices?.() ?? [])
      this.metrics.deviceHealthy.set({ device: d.id, name: d.name }, d.healthy ? 1 : 0);
    this.metrics.pendingConnections.set(this.admission.pendingCount);
    for (const [rule, n] of Object.entries(this.admission.closed)) this.metrics.connectionsRefused.set({ rule }, n);
    this.metrics.replayBytes.set(this.gym.sessions.replay.totalBytes);
    this.metrics.replayEvicted.set(this.gym.sessions.replay.evicted);
  }

  /** POST /v1/evaluate: one evaluation outside any episode, refused while the pending steps are at their limit. */
  private evaluateRoute(app: FastifyInstance): void {
    app.post('/v1/evaluate', async (req, reply) => {
      if (!this.authorized(req.headers.authorization, undefined, req.ip))
        return this.httpError(reply, new ProtocolError('unauthorized', 'a bearer token is required'));
      const body = EvaluateBody.safeParse(req.body);
      if (!body.success)
        return this.httpError(reply, new ProtocolError('invalid_message', body.error.issues[0]!.message));
      try {
        const set = this.gym.taskset(body.data.taskset);
        const task = set.tasks.get(body.data.task);
        if (!task) throw new ProtocolError('unknown_task', `no task "${body.data.task}"`);
        const { code, reply: text, seed } = body.data;
        const chars = (code ?? text ?? '').length;
        if (chars > this.config.maxActionChars)
          throw new ProtocolError('too_large', `${chars} characters; the limit is ${this.config.maxActionChars}`);
        return await this.gym.evaluateOnce(async () => {
          // Extraction runs on this thread: a large one in a turn of the event loop of its own, as a step's.
          if (chars > LARGE_REPLY_CHARS) await this.gym.heavy.turn();
          return this.evaluator.evaluate({ task, code, reply: text, seed: seed ?? 0 });
        });
      } catch (e) {
        return this.httpError(reply, e);
      }
    });
  }

  /** An HTTP upgrade: /ws is OpenEnv's door, /v1/ws protocol v1's, admitted here. */
  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/ws') return this.openenv.upgrade(req, socket, head);
    if (url.pathname !== '/v1/ws') return refuse(socket, 404, 'Not Found');
    const address = (socket as Socket).remoteAddress ?? '?';
    if (this.admission.throttled(address)) return refuse(socket, 429, 'Too Many Requests');
    if (this.conns.size >= this.config.maxConnections + this.config.maxPendingConnections)
      return refuse(socket, 503, 'Service Unavailable');
    // A keep-alive connection that served HTTP before is pending again until its hello.
    this.admission.pend(socket as Socket);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, socket as Socket, address));
  }

  private httpError(reply: { code(n: number): unknown }, e: unknown) {
    const err = toProtocolError(e);
    reply.code(httpStatus(err.code));
    return { ok: false, error: err.toWire() };
  }

  private accept(ws: WebSocket, socket: Socket, address: string): void {
    const conn: Conn = {
      ws,
      socket,
      address,
      session: null,
      alive: true,
      encoding: 'json',
      deferred: 0,
      deferredBytes: 0,
    };
    this.conns.add(conn);
    this.admission.onDeadline(socket, () => {
      this.fail(
        conn,
        null,
        new ProtocolError('timeout', `no successful hello within ${this.config.helloTimeoutMs} ms`),
        conn.encoding,
      );
      ws.close(4008, 'no hello in time');
      setTimeout(() => ws.terminate(), 1000).unref();
    });
    this.metrics.connections.set(this.conns.size);
    ws.on('pong', () => (conn.alive = true));
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onFrame(conn, data, isBinary));
    ws.on('error', () => ws.terminate());
    ws.on('close', () => {
      this.conns.delete(conn);
      if (conn.session) this.helloed--;
      this.metrics.connections.set(this.conns.size);
      if (conn.session && conn.session.sink && (conn.session.sink as ConnSink).conn === conn)
        this.gym.sessions.detach(conn.session);
    });
  }

  private send(conn: Conn, value: unknown, encoding: Encoding): void {
    if (conn.ws.readyState !== conn.ws.OPEN) return;
    conn.ws.send(encode(value, encoding), { binary: encoding === 'msgpack' });
  }

  private fail(conn: Conn, id: RequestId | null, e: unknown, encoding: Encoding): void {
    const err = toProtocolError(e);
    this.metrics.errors.inc({ code: err.code });
    this.send(conn, { id, ok: false, error: err.toWire() }, encoding);
  }

  /** Large frames are decoded one per event-loop turn (see connection.ts's DeferredFrames). */
  private onFrame(conn: Conn, data: Buffer, isBinary: boolean): void {
    this.deferred.run(conn, data, () => this.handleFrame(conn, data, isBinary));
  }

  private handleFrame(conn: Conn, data: Buffer, isBinary: boolean): void {
    const d = decode(data, isBinary, this.config.maxFrameBytes);
    conn.encoding = d.encoding;
    if (!d.message) return this.fail(conn, d.id, d.error, d.encoding);
    try {
      this.dispatch(conn, d.message, d.encoding);
    } catch (e) {
      this.fail(conn, d.message.id, e, d.encoding);
    }
  }

  private dispatch(conn: Conn, m: ClientMessage, encoding: Encoding): void {
    const answer = (body: object) => this.send(conn, { id: m.id, ok: true, ...body }, encoding);
    if (m.op === 'hello') return this.hello(conn, m, encoding);
    const session = conn.session;
    if (!session) throw new ProtocolError('unauthorized', 'send a successful hello first');
    session.encoding = encoding;
    switch (m.op) {
      case 'ping':
        return answer({ pong: true, time: Date.now() });
      case 'tasks':
        return answer(this.gym.tasks(m));
      case 'reset':
        return answer(this.gym.reset(session, m));
      case 'step':
        return this.gym.step(session, m, encoding);
      case 'cancel':
        return answer(this.gym.cancel(session, m));
      case 'state':
        return answer(this.gym.state(session, m));
      case 'close':
        return answer(this.gym.close(session, m));
    }
  }

  private hello(conn: Conn, m: Extract<ClientMessage, { op: 'hello' }>, encoding: Encoding): void {
    if (this.admission.throttled(conn.address)) {
      this.closeSoon(conn, 4029, 'too many failed hellos');
      throw new ProtocolError(
        'rate_limited',
        'too many failed hellos from this address',
        this.admission.retryAfterMs(conn.address),
      );
    }
    if (!this.gate.matches(m.token)) {
      const wait = this.admission.authFailed(conn.address);
      if (wait > 0) {
        this.closeSoon(conn, 4029, 'too many failed hellos');
        throw new ProtocolError('rate_limited', 'too many failed hellos from this address', wait);
      }
      throw new ProtocolError('unauthorized', 'the token is missing or wrong');
    }
    let session = m.resume ? this.gym.sessions.byResumeToken(m.resume) : undefined;
    const resumed = session !== undefined;
    if (!session) {
      if (this.gym.sessions.size >= this.config.maxSessions)
        throw new ProtocolError('busy', `the server holds its limit of ${this.config.maxSessions} sessions`, 5000);
      this.openenv.freeFinished(conn.address);
      if (this.gym.sessions.sessionsOf(conn.address) >= this.config.maxSessionsPerAddress)
        throw new ProtocolError(
          'busy',
          `this address holds its limit of ${this.config.maxSessionsPerAddress} sessions (they last ${this.config.resumeGraceMs} ms after their connection); resume one instead`,
          5000,
        );
    }
    if (!conn.session && this.helloed >= this.config.maxConnections)
      throw new ProtocolError('busy', `the server holds its limit of ${this.config.maxConnections} connections`, 5000);
    // Resuming the session this connection already holds just answers.
    const own = session !== undefined && session.sink instanceof ConnSink && session.sink.conn === conn;
    if (session?.sink && !own) session.sink.close(4000, 'resumed on another connection');
    session ??= this.gym.sessions.create(conn.address);
    if (conn.session && conn.session !== session) this.gym.sessions.detach(conn.session);
    if (!conn.session) {
      this.helloed++;
      this.admission.settle(conn.socket);
      raiseFrameLimit(conn.ws, this.config.hardFrameBytes);
    }
    conn.session = session;
    this.metrics.sessions.set(this.gym.sessions.size);
    this.send(conn, { id: m.id, ok: true, ...this.gym.hello(session), resumed }, encoding);
    if (!own) session.attach(new ConnSink(conn, (v, enc) => this.send(conn, v, enc)));
  }

  /** Closes after the error answer has gone out. */
  private closeSoon(conn: Conn, code: number, reason: string): void {
    setImmediate(() => conn.ws.close(code, reason));
  }

  async listen(): Promise<string> {
    const address = await this.app.listen({ host: this.config.host, port: this.config.port });
    this.pingTimer = setInterval(() => {
      for (const c of this.conns) {
        if (!c.alive) {
          c.ws.terminate();
          continue;
        }
        c.alive = false;
        c.ws.ping();
      }
    }, this.config.pingIntervalMs);
    this.pingTimer.unref();
    return address;
  }

  get port(): number {
    const a = this.app.server.address();
    return typeof a === 'object' && a ? a.port : this.config.port;
  }

  async close(): Promise<void> {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.admission.close();
    this.openenv.close();
    for (const c of this.conns) c.ws.terminate();
    for (const s of [...this.gym.sessions.all()]) this.gym.sessions.expire(s);
    await this.app.close();
    await this.evaluator.close();
    this.log.close();
  }
}

/** Known errors keep their code; anything else is logged and reaches clients only as `internal`. */
function toProtocolError(e: unknown): ProtocolError {
  const known = protocolErrorOf(e);
  if (known) return known;
  console.error('internal error:', e);
  return new ProtocolError('internal', 'internal error');
}

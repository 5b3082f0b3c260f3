/** The OpenEnv front door: OpenEnv's published protocol (a WebSocket at /ws with
 * reset/step/state/close messages; HTTP /reset, /step, /state, /schema, /health,
 * /metadata) over the same Gym as protocol v1. Episodes, rewards, masks, log
 * records and limits are the Gym's; only the shapes differ. A masked turn (an
 * infrastructure failure) is an `error` message with code ENV_ERROR, never an
 * observation with a reward: OpenEnv's observations have no mask. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import { PACKAGE_VERSION } from '../tasks/paths.js';
import type { Admission } from './admission.js';
import type { ServerConfig } from './config.js';
import { doorHttpStatus, ProtocolError } from './errors.js';
import type { Gym } from './gym.js';
import {
  DoorError,
  errorData,
  HttpStepSchema,
  KernelActionSchema,
  KernelObservationSchema,
  KernelStateSchema,
  parse,
  WsMessageSchema,
} from './openenv-schemas.js';
import { Instance, Waiters } from './openenv-instance.js';
import type { Session } from './sessions.js';

/** Frames one connection may have waiting behind the one in progress, and their bytes; and
 * the bytes waiting over all connections. A frame past any of them is refused (CAPACITY_REACHED),
 * not kept: 20 connections with 64 frames of 1 MiB each behind a step held 1.2 GiB. */
const MAX_QUEUED = 64;
const MAX_QUEUED_BYTES = 1024 * 1024;
const MAX_QUEUED_BYTES_ALL = 32 * 1024 ** 2;

export class OpenEnvDoor {
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<WebSocket>();
  /** HTTP has no connection: each /reset makes an instance, found again by its episode id. */
  private readonly httpInstances = new Map<string, { instance: Instance; active: number }>();
  private readonly pingTimer: NodeJS.Timeout;
  /** Bytes of frames waiting behind another, over all connections. */
  private queuedBytes = 0;

  constructor(
    private readonly gym: Gym,
    private readonly config: ServerConfig,
    private readonly admission: Admission,
    /** A wrong or missing token counts against `address` (see auth.ts). */
    private readonly authorized: (header: string | undefined, query: unknown, address: string) => boolean,
    /** False while steps are refused (the log's disk is full, the queue unreachable). */
    private readonly takingSteps: () => boolean,
  ) {
    // No hello: a connection is authorized at the upgrade, so frames may be full size at once.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: config.maxFrameBytes });
    const alive = new WeakSet<WebSocket>();
    this.pingTimer = setInterval(() => {
      for (const ws of this.sockets) {
        if (!alive.has(ws)) ws.terminate();
        else {
          alive.delete(ws);
          ws.ping();
        }
      }
    }, config.pingIntervalMs);
    this.pingTimer.unref();
    this.wss.on('connection', (ws: WebSocket) => {
      alive.add(ws);
      ws.on('pong', () => alive.add(ws));
    });
  }

  /** A session for a new instance, within the server's session quotas. */
  private newSession(address: string): Session {
    this.freeFinished(address);
    if (this.gym.sessions.size >= this.config.maxSessions)
      throw new DoorError('CAPACITY_REACHED', `the server holds its limit of ${this.config.maxSessions} sessions`, {
        retryable: true,
      });
    if (this.gym.sessions.sessionsOf(address) >= this.config.maxSessionsPerAddress)
      throw new DoorError(
        'CAPACITY_REACHED',
        `this address holds its limit of ${this.config.maxSessionsPerAddress} sessions`,
        { retryable: true },
      );
    return this.gym.sessions.create(address);
  }

  /** The upgrade of /ws: authorized by a bearer header or ?token=, then one session per connection. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const address = (socket as Socket).remoteAddress ?? '?';
    const refuse = (status: number, text: string): void =>
      void socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    if (this.admission.throttled(address)) return refuse(429, 'Too Many Requests');
    const query = Object.fromEntries(new URL(req.url ?? '/', 'http://x').searchParams);
    if (!this.authorized(req.headers.authorization, query, address)) return refuse(401, 'Unauthorized');
    if (this.sockets.size >= this.config.maxConnections) return refuse(503, 'Service Unavailable');
    this.admission.settle(socket as Socket);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, address));
  }

  private accept(ws: WebSocket, address: string): void {
    this.sockets.add(ws);
    this.wss.emit('connection', ws);
    const send = (type: string, data: unknown) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type, data }));
    };
    let instance: Instance;
    try {
      instance = new Instance(
        this.gym,
        this.newSession(address),
        new Waiters((code, reason) => ws.close(code, reason)),
      );
    } catch (e) {
      send('error', errorData(e));
      ws.close(1013, 'capacity reached');
      this.sockets.delete(ws);
      return;
    }
    instance.session.attach(instance.waiters);
    let queue = Promise.resolve();
    let queued = 0;
    let bytes = 0;
    ws.on('message', (raw: Buffer, isBinary: boolean) => {
      const full =
        queued >= MAX_QUEUED ||
        (queued > 0 && (bytes + raw.length > MAX_QUEUED_BYTES || this.queuedBytes + raw.length > MAX_QUEUED_BYTES_ALL));
      if (full)
        return send('error', {
          message: `too much waits behind the message in progress (at most ${MAX_QUEUED} messages, ${MAX_QUEUED_BYTES} bytes); send after its answer`,
          code: 'CAPACITY_REACHED',
          retryable: true,
        });
      queued++;
      bytes += raw.length;
      this.queuedBytes += raw.length;
      // One message at a time, in order, as OpenEnv's server answers them.
      queue = queue.then(async () => {
        queued--;
        bytes -= raw.length;
        this.queuedBytes -= raw.length;
        await this.answer(ws, instance, raw, isBinary, send);
      });
    });
    ws.on('error', () => ws.terminate());
    ws.on('close', () => {
      this.sockets.delete(ws);
      // The instance goes with its connection: its episode and any step in flight.
      this.gym.sessions.expire(instance.session);
    });
  }

  /** One message of a connection, answered. */
  private async answer(
    ws: WebSocket,
    instance: Instance,
    raw: Buffer,
    isBinary: boolean,
    send: (type: string, data: unknown) => void,
  ): Promise<void> {
    try {
      if (isBinary) throw new DoorError('INVALID_JSON', 'frames are JSON text');
      let json: unknown;
      try {
        json = JSON.parse(raw.toString('utf8'));
      } catch (e) {
        throw new DoorError('INVALID_JSON', `Invalid JSON: ${(e as Error).message}`);
      }
      const type = (json as { type?: unknown } | null)?.type;
      if (typeof type !== 'string' || !['reset', 'step', 'state', 'close'].includes(type))
        throw new DoorError('UNKNOWN_TYPE', `Unknown message type: ${String(type)}`);
      const m = parse(WsMessageSchema, json, type);
      if (m.type === 'reset') send('observation', instance.reset(m.data));
      else if (m.type === 'step') send('observation', await instance.step(m.data));
      else if (m.type === 'state') send('state', instance.state());
      else ws.close(1000, 'closed');
    } catch (e) {
      send('error', errorData(e));
    }
  }

  routes(app: FastifyInstance): void {
    this.episodeRoutes(app);
    this.describeRoutes(app);
  }

  /** /reset, /step and /state over HTTP: an instance per reset, found again by its episode id. */
  private episodeRoutes(app: FastifyInstance): void {
    const fail = (reply: FastifyReply, e: unknown) => {
      const data = errorData(e);
      return reply.code(doorHttpStatus(String(data.code))).send({ detail: data });
    };
    const guard = (req: FastifyRequest) => {
      if (!this.authorized(req.headers.authorization, undefined, req.ip))
        throw new DoorError('UNAUTHORIZED', 'a bearer token is required');
    };
    app.post('/reset', async (req, reply) => {
      try {
        guard(req);
        const session = this.newSession(req.ip);
        const instance = new Instance(this.gym, session, new Waiters());
        let out;
        try {
          out = instance.reset(req.body ?? {});
        } catch (e) {
          this.gym.sessions.expire(session);
          throw e;
        }
        this.httpInstances.set(instance.episode!, { instance, active: 0 });
        // Unattached, the session lasts the resume grace after its last request, then goes with its episode.
        this.gym.sessions.detach(session);
        this.sweep();
        return out;
      } catch (e) {
        return fail(reply, e);
      }
    });
    app.post('/step', async (req, reply) => {
      try {
        guard(req);
        const body = parse(HttpStepSchema, req.body, 'step');
        const held = this.httpInstance(body.episode_id);
        held.active++;
        held.instance.session.attach(held.instance.waiters);
        try {
          return await held.instance.step(body.action, body.request_id);
        } finally {
          if (--held.active === 0) this.gym.sessions.detach(held.instance.session);
        }
      } catch (e) {
        return fail(reply, e);
      }
    });
    app.get('/state', async (req, reply) => {
      try {
        guard(req);
        const id = (req.query as { episode_id?: unknown }).episode_id;
        if (typeof id !== 'string')
          throw new DoorError(
            'VALIDATION_ERROR',
            'state over HTTP needs ?episode_id= (from the observation of /reset)',
          );
        return this.httpInstance(id).instance.state();
      } catch (e) {
        return fail(reply, e);
      }
    });
  }

  /** /schema, /health and /metadata: what the environment is and whether it takes steps. */
  private describeRoutes(app: FastifyInstance): void {
    const schemas = {
      action: z.toJSONSchema(KernelActionSchema, { io: 'input' }),
      observation: z.toJSONSchema(KernelObservationSchema),
      state: z.toJSONSchema(KernelStateSchema),
    };
    app.get('/schema', async () => schemas);
    app.get('/health', async () => ({ status: this.takingSteps() ? 'healthy' : 'degraded' }));
    app.get('/metadata', async () => ({
      name: 'anvil',
      description:
        'Kernel writing: reset gives a task (a C function to make fast), step takes the model reply; the kernel is compiled, checked, timed and profiled in a sandbox, and the reward comes from the profile.',
      readme_content: null,
      version: PACKAGE_VERSION,
      author: null,
      documentation_url: null,
    }));
  }

  private httpInstance(episode: string) {
    const held = this.httpInstances.get(episode);
    if (!held || !this.gym.sessions.get(held.instance.session.id)) {
      this.httpInstances.delete(episode);
      throw new ProtocolError(
        'unknown_episode',
        `no episode "${episode}" (HTTP episodes last ${this.config.resumeGraceMs} ms after their last request)`,
      );
    }
    return held;
  }

  /** At its address's session quota, an HTTP reset first frees that address's oldest finished
   * HTTP episode (whose last answer then can no longer be replayed: unknown_episode). Over HTTP
   * every episode is a session, and finished ones held the quota for the resume grace: about
   * 500 episodes in 5 minutes locked the address out, its protocol v1 hellos included. */
  freeFinished(address: string): void {
    if (this.gym.sessions.sessionsOf(address) < this.config.maxSessionsPerAddress) return;
    for (const [episode, held] of this.httpInstances) {
      const session = held.instance.session;
      if (session.address !== address || held.active > 0) continue;
      if (this.gym.episodes.get(episode)?.state !== 'done' && this.gym.sessions.get(session.id)) continue;
      this.httpInstances.delete(episode);
      this.gym.sessions.expire(session);
      return;
    }
  }

  /** Instances whose session expired leave the map (bounded by the session quotas meanwhile). */
  private sweep(): void {
    if (this.httpInstances.size < 1024) return;
    for (const [ep, held] of this.httpInstances)
      if (!this.gym.sessions.get(held.instance.session.id)) this.httpInstances.delete(ep);
  }

  close(): void {
    clearInterval(this.pingTimer);
    for (const ws of this.sockets) ws.terminate();
  }
}

/** Server settings: every resource has a named, finite limit. One strict
 * schema, one commented defaults object. */
import { z } from 'zod';
import { EvalConfigSchema } from '../sandbox/config.js';
import { TorchConfigSchema } from '../sandbox/torch-backend.js';

export const ServerConfigSchema = z
  .object({
    host: z.string(),
    port: z.number().int().min(0).max(65535),
    taskset: z.string(),
    /** With a token, `hello` must carry it and nothing is served before. */
    token: z.string().min(1).nullable(),
    logDir: z.string(),
    /** A log file is closed and a new one opened past this size. */
    logRotateBytes: z.number().int().positive(),
    /** Frames larger than this get `too_large`, and the connection stays open. */
    maxFrameBytes: z.number().int().positive(),
    /** Frames larger than this close the connection (protects the process). */
    hardFrameBytes: z.number().int().positive(),
    /** WebSocket connections that said a successful hello, over all addresses. */
    maxConnections: z.number().int().positive(),
    /** TCP connections from one address (pending or not); more are closed at once. */
    maxConnectionsPerAddress: z.number().int().positive(),
    /** Connections that have not said a successful hello (nor sent an HTTP request);
     * past this, the oldest of them is closed to make room. */
    maxPendingConnections: z.number().int().positive(),
    /** A connection that has not said a successful hello by then is closed. */
    helloTimeoutMs: z.number().int().positive(),
    /** Frames before a successful hello larger than this close the connection. */
    preHelloFrameBytes: z.number().int().positive(),
    /** Failed hellos per address and minute; past this, `rate_limited` and refused upgrades. */
    authFailuresPerMinute: z.number().int().positive(),
    /** Sessions over all addresses, and from one address (connected or within their grace). */
    maxSessions: z.number().int().positive(),
    maxSessionsPerAddress: z.number().int().positive(),
    /** Open (not finished) episodes of one session; resets beyond get `busy`. */
    maxEpisodesPerSession: z.number().int().positive(),
    /** Finished episodes kept for `state`, over all sessions; older ones are freed. */
    finishedEpisodesKept: z.number().int().min(0),
    /** Characters of turn actions kept for `state`, over all episodes held; past it, a new
     * turn keeps only its first SHORT_ACTION_CHARS (the log always has the whole reply). */
    keptActionChars: z.number().int().positive(),
    /** Open episodes over all sessions; resets beyond get `busy`. */
    maxEpisodes: z.number().int().positive(),
    /** Steps admitted and not yet answered; steps beyond get `busy`. */
    maxPendingSteps: z.number().int().positive(),
    maxGroupSize: z.number().int().positive(),
    /** The turn limit a reset may ask for, at most. */
    maxTurnsLimit: z.number().int().positive(),
    /** Characters of one action; longer ones end the turn as `invalid_action`. */
    maxActionChars: z.number().int().positive(),
    /** Bytes of a step's `meta`, as JSON. */
    maxMetaBytes: z.number().int().positive(),
    /** How long a session and its episodes outlive their connection. */
    resumeGraceMs: z.number().int().positive(),
    /** Step answers kept, over all sessions, to re-send a retried request: at most
     * this many bytes and this old. Past either bound a retry gets `replay_expired`
     * and is never evaluated again. */
    replayBytes: z.number().int().positive(),
    replayMaxAgeMs: z.number().int().positive(),
    /** Ping period; a socket that misses a whole period is closed. */
    pingIntervalMs: z.number().int().positive(),
    /** When the log is made durable: never explicitly (the OS decides), after
     * every record, or at most every logFsyncBatchMs. */
    logFsync: z.enum(['none', 'step', 'batch']),
    logFsyncBatchMs: z.number().int().positive(),
    /** While the log's disk is full, its free space is checked this often. */
    logProbeMs: z.number().int().positive(),
    /** Pool workers for compile and correctness. */
    poolSize: z.number().int().positive(),
    allowUnsandboxed: z.boolean(),
    /** Verdicts cached by (task, code, seed, configuration). */
    cacheSize: z.number().int().min(0),
    /** redis://host:port: evaluate through the queue and `anvil worker`s instead of in this process. */
    redis: z.string().nullable(),
    /** With redis and a torch task set: the queue's device kind, matching the workers' --device-kind. */
    deviceKind: z.string().regex(/^[a-z0-9_-]+$/),
    /** The C backend's evaluation settings (deadlines, timing budget, limits), over sandbox/config.ts's defaults. */
    eval: EvalConfigSchema.partial(),
    /** The torch backend's evaluation settings (trials, budgets, warm-up calls), over torch-backend.ts's defaults. */
    torch: TorchConfigSchema.partial(),
  })
  .strict();
export type ServerConfig = z.infer<typeof ServerConfigSchema>;

export const DEFAULT_SERVER_CONFIG: Readonly<Omit<ServerConfig, 'poolSize'>> = Object.freeze({
  host: '127.0.0.1',
  port: 8765,
  taskset: 'builtin-c',
  token: null,
  logDir: 'anvil-logs',
  logRotateBytes: 64 * 1024 ** 2,
  maxFrameBytes: 1024 * 1024,
  hardFrameBytes: 16 * 1024 * 1024,
  maxConnections: 1024,
  maxConnectionsPerAddress: 256,
  maxPendingConnections: 1024,
  helloTimeoutMs: 10_000,
  preHelloFrameBytes: 8 * 1024,
  authFailuresPerMinute: 30,
  maxSessions: 10_000,
  maxSessionsPerAddress: 512,
  maxEpisodesPerSession: 4096,
  finishedEpisodesKept: 10_000,
  keptActionChars: 32 * 1024 ** 2,
  maxEpisodes: 100_000,
  maxPendingSteps: 4096,
  maxGroupSize: 64,
  maxTurnsLimit: 16,
  maxActionChars: 512 * 1024,
  maxMetaBytes: 256 * 1024,
  resumeGraceMs: 5 * 60_000,
  replayBytes: 256 * 1024 ** 2,
  replayMaxAgeMs: 30 * 60_000,
  pingIntervalMs: 15_000,
  logFsync: 'batch',
  logFsyncBatchMs: 1000,
  logProbeMs: 1000,
  allowUnsandboxed: false,
  cacheSize: 10_000,
  redis: null,
  deviceKind: 'gpu',
  eval: {},
  torch: {},
});

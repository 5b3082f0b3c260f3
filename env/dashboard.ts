/** The live dashboard: one page, one script, two JSON endpoints; behind the token when one is set. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { episodeSummaries, episodeView, runStats } from '../records/stats.js';
import type { WorkerInfo } from '../sandbox/evaluator.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import { httpStatus } from '../contracts/errors.js';
import { ProtocolError } from './errors.js';
import type { Gym } from './gym.js';

const UI_DIR = path.join(PACKAGE_ROOT, 'env', 'ui');

/** What the dashboard shows, from the server. */
export interface DashboardSource {
  gym: Gym;
  /** A wrong or missing token counts against `address` (see auth.ts). */
  authorized(header: string | undefined, query: unknown, address: string): boolean;
  health(): object;
  workers(): WorkerInfo[] | Promise<WorkerInfo[]>;
}

export function dashboardRoutes(app: FastifyInstance, src: DashboardSource): void {
  const page = readFileSync(path.join(UI_DIR, 'index.html'), 'utf8').replace('<script>/*ANVIL_DATA*/</script>', '');
  const script = readFileSync(path.join(UI_DIR, 'app.js'), 'utf8');
  const guard = (req: FastifyRequest, reply: FastifyReply) => {
    if (src.authorized(req.headers.authorization, req.query, req.ip)) return true;
    reply.code(httpStatus('unauthorized')).send({
      ok: false,
      error: new ProtocolError('unauthorized', 'the dashboard needs the token: ?token=… or a bearer header').toWire(),
    });
    return false;
  };
  app.get('/', async (req, reply) => {
    if (!guard(req, reply)) return reply;
    return reply.type('text/html; charset=utf-8').send(page);
  });
  app.get('/ui/app.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send(script));
  app.get('/v1/dashboard/state', async (req, reply) => {
    if (!guard(req, reply)) return reply;
    const recent = src.gym.recent;
    return {
      status: { ...src.health(), queues: { c: src.gym.pendingSteps } },
      stats: runStats(recent, { now: Date.now() }),
      workers: await src.workers(),
      recent: episodeSummaries(recent, 50),
    };
  });
  app.get('/v1/dashboard/episodes/:id', async (req, reply) => {
    if (!guard(req, reply)) return reply;
    const view = episodeView(src.gym.recent, (req.params as { id: string }).id);
    if (!view)
      return reply
        .code(httpStatus('unknown_episode'))
        .send({ ok: false, error: new ProtocolError('unknown_episode', 'no recent turns of that episode').toWire() });
    return view;
  });
}

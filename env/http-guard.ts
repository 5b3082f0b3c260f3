/** What HTTP adds to admission and errors, for every route of every door.
 *
 * A socket is pending (hello deadline, evictable; see admission.ts) except while it carries
 * a request that has arrived whole and is not yet answered: a slow body, or an idle
 * keep-alive connection between requests, holds no place the pending pool cannot take back.
 * An address past its budget of failed authentications gets 429 on every route for the rest
 * of the minute, except liveness asked without a token (it says nothing). And what fastify
 * refuses itself (a body that is not JSON, or too large) gets the registry's typed errors. */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { httpStatus } from '../contracts/errors.js';
import type { Admission } from './admission.js';
import { presentedToken, type TokenGate } from './auth.js';
import { ProtocolError } from './errors.js';
import { errorData } from './openenv-schemas.js';

/** OpenEnv's routes answer errors as `{"detail": …}`; the others as protocol v1's `{"ok": false, "error": …}`. */
const isOpenEnvRoute = (url: string) => /^\/(reset|step|state)(\?|$)/.test(url);

function errorBody(url: string, err: ProtocolError): object {
  return isOpenEnvRoute(url) ? { detail: errorData(err) } : { ok: false, error: err.toWire() };
}

export function guardHttp(app: FastifyInstance, admission: Admission, gate: TokenGate): void {
  app.addHook('preHandler', async (req) => admission.settle(req.raw.socket as Socket));
  app.server.on('request', (req: IncomingMessage, res) => {
    const socket = req.socket as Socket;
    res.once('finish', () => admission.pend(socket));
  });
  app.addHook('onRequest', async (req, reply) => {
    const liveness = /^\/health(z)?(\?|$)/.test(req.url);
    if (liveness && presentedToken(req.headers.authorization, req.query) === undefined) return undefined;
    if (!gate.required || !admission.throttled(req.ip)) return undefined;
    return throttled(req.url, admission.retryAfterMs(req.ip), reply);
  });
}

function throttled(url: string, retryAfterMs: number, reply: FastifyReply): FastifyReply {
  const err = new ProtocolError('rate_limited', 'too many failed authentications from this address', retryAfterMs);
  return reply.code(httpStatus('rate_limited')).send(errorBody(url, err));
}

export function typedHttpErrors(app: FastifyInstance): void {
  app.setErrorHandler((e: { statusCode?: number; message: string }, req, reply) => {
    const status = e.statusCode ?? 500;
    if (status >= 500) {
      // A bug: the details go to the server's log, never into the answer.
      console.error('internal error:', e);
      return reply.code(500).send(errorBody(req.url, new ProtocolError('internal', 'internal error')));
    }
    const code = status === 413 ? 'too_large' : 'invalid_message';
    return reply.code(httpStatus(code)).send(errorBody(req.url, new ProtocolError(code, e.message.slice(0, 200))));
  });
}

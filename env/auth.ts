/** The token, checked the same way at every door: `hello`, both WebSocket upgrades and
 * every HTTP route that needs it. The comparison takes the same time whatever the guess,
 * and every wrong (or, where the route needs one, missing) token counts against its
 * address in the admission's failure budget, so guessing is throttled at every door
 * alike, not only at `hello`. */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { httpStatus } from '../contracts/errors.js';
import type { Admission } from './admission.js';
import { ProtocolError } from './errors.js';
import { errorData } from './openenv-schemas.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

export class TokenGate {
  private readonly want: Buffer | null;

  constructor(
    token: string | null,
    private readonly admission: Admission,
  ) {
    this.want = token === null ? null : digest(token);
  }

  get required(): boolean {
    return this.want !== null;
  }

  /** True for the token, or when none is configured; counts nothing. */
  matches(presented: string | undefined): boolean {
    if (this.want === null) return true;
    return presented !== undefined && timingSafeEqual(digest(presented), this.want);
  }

  /** As `matches`, and a failure counts against the address (a missing token only when `missingCounts`). */
  check(address: string, presented: string | undefined, missingCounts = true): boolean {
    if (this.matches(presented)) return true;
    if (presented !== undefined || missingCounts) this.admission.authFailed(address);
    return false;
  }
}

/** The token an HTTP request presents: `Authorization: Bearer …`, else `?token=` where the route takes it. */
export function presentedToken(header: string | undefined, query?: unknown): string | undefined {
  // A header that is not a bearer token presents nothing that could match (the token is never empty).
  if (header !== undefined) return header.startsWith('Bearer ') ? header.slice(7) : '';
  const q = (query as { token?: unknown } | undefined)?.token;
  return typeof q === 'string' ? q : undefined;
}

/** HTTP's share of admission. A socket is pending (hello deadline, evictable) except while it
 * carries a request that has arrived whole and is not yet answered: a slow body, or an idle
 * keep-alive connection between requests, holds no place the pending pool cannot take back.
 * And an address past its budget of failed authentications gets 429 on every route for the
 * rest of the minute, except liveness asked without a token (it says nothing). */
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
  const openenv = /^\/(reset|step|state)(\?|$)/.test(url);
  return reply
    .code(httpStatus('rate_limited'))
    .send(openenv ? { detail: errorData(err) } : { ok: false, error: err.toWire() });
}

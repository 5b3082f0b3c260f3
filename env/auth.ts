/** The token, checked the same way at every door: `hello`, both WebSocket upgrades and
 * every HTTP route that needs it. The comparison takes the same time whatever the guess,
 * and every wrong (or, where the route needs one, missing) token counts against its
 * address in the admission's failure budget, so guessing is throttled at every door
 * alike, not only at `hello`. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Admission } from './admission.js';

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

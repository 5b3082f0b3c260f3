/** Protocol error codes (DESIGN §2), one registry: every error a client can
 * receive, and whether retrying may help. Clients match on `code`. */
export const PROTOCOL_ERRORS = {
  invalid_message: { retryable: false },
  unknown_op: { retryable: false },
  unknown_episode: { retryable: false },
  unknown_task: { retryable: false },
  unknown_taskset: { retryable: false },
  unknown_step: { retryable: false },
  episode_done: { retryable: false },
  step_in_flight: { retryable: true },
  busy: { retryable: true },
  unauthorized: { retryable: false },
  too_large: { retryable: false },
  internal: { retryable: true },
} as const;

export type ProtocolErrorCode = keyof typeof PROTOCOL_ERRORS;

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  readonly retryAfterMs?: number;
  constructor(code: ProtocolErrorCode, message: string, retryAfterMs?: number) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }

  toWire(): { code: ProtocolErrorCode; message: string; retryable: boolean; retryAfterMs?: number } {
    return {
      code: this.code,
      message: this.message,
      retryable: PROTOCOL_ERRORS[this.code].retryable,
      ...(this.retryAfterMs !== undefined ? { retryAfterMs: this.retryAfterMs } : {}),
    };
  }
}

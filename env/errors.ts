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
  /** Too many failed hellos from this address; wait retryAfterMs. */
  rate_limited: { retryable: true },
  /** The step's answer was given earlier and is no longer kept (the replay bounds); it is not evaluated again. */
  replay_expired: { retryable: false },
  /** The turn log's disk is full: the step was not counted; retry once space returns. */
  storage_full: { retryable: true },
  /** No successful hello within the deadline. */
  timeout: { retryable: true },
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

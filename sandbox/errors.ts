/** Every error Anvil reports to a caller, in one registry: a stable code, and
 * whether trying again may help. Callers match on `code`, never on messages. */
export const ERRORS = {
  unknown_task: { retryable: false },
  unknown_taskset: { retryable: false },
  invalid_task: { retryable: false },
  file_not_found: { retryable: false },
  code_too_large: { retryable: false },
  invalid_argument: { retryable: false },
  sandbox_unavailable: { retryable: false },
  toolchain_failed: { retryable: true },
  cancelled: { retryable: false },
  queue_unreachable: { retryable: true },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class AnvilError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'AnvilError';
    this.code = code;
    this.retryable = ERRORS[code].retryable;
  }
}

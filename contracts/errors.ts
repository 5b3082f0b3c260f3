/** Every name Anvil gives a failure, in one registry: the protocol's error
 * codes, the OpenEnv door's codes, the errors the evaluator and the CLI raise,
 * the evaluation outcomes and the flag kinds. Each says what it means, whether
 * trying again may help, and (where an HTTP route can answer with it) its HTTP
 * status. Callers match on codes, never on messages. A shared contract: it
 * imports only zod. `test/errors.test.ts` holds it against docs/protocol.md and
 * both clients. */
import { z } from 'zod';

interface Facts {
  /** What it means, for whoever reads the code in an answer or a log. */
  readonly message: string;
  readonly retryable: boolean;
  /** The HTTP status of an answer carrying it; absent: 500 where it reaches HTTP at all. */
  readonly http?: number;
}

const keys = <T extends object>(o: T) => Object.keys(o) as [keyof T & string, ...(keyof T & string)[]];

/** Protocol v1's error codes: every error a client can receive (docs/protocol.md). */
export const PROTOCOL_ERRORS = {
  invalid_message: { message: "the frame does not decode, or fails the op's schema", retryable: false, http: 400 },
  unknown_op: { message: '`op` is not one of the ops', retryable: false },
  unauthorized: { message: 'no successful `hello` yet, or a missing or wrong token', retryable: false, http: 401 },
  unknown_episode: {
    message: 'the episode does not exist in this session (or was closed)',
    retryable: false,
    http: 404,
  },
  unknown_task: { message: 'the server does not have the task named', retryable: false, http: 404 },
  unknown_taskset: { message: 'the server does not have the task set named', retryable: false, http: 404 },
  unknown_step: { message: '`cancel` names a step that is not in flight', retryable: false },
  episode_done: { message: 'the episode has ended (terminated or truncated)', retryable: false, http: 409 },
  step_in_flight: { message: "the episode's previous step has not been answered", retryable: true, http: 409 },
  busy: { message: 'the server is at a limit; carries retryAfterMs', retryable: true, http: 503 },
  rate_limited: {
    message: 'too many failed authentications from this address; wait retryAfterMs',
    retryable: true,
    http: 429,
  },
  replay_expired: {
    message: "the step's answer was given earlier and is no longer kept; it is not evaluated again",
    retryable: false,
  },
  storage_full: {
    message: "the turn log's disk is full: the step was not counted; retry once space returns",
    retryable: true,
    http: 503,
  },
  timeout: { message: 'no successful hello within the deadline', retryable: true },
  too_large: { message: 'a frame or a field over its size limit', retryable: false, http: 413 },
  internal: { message: "a bug; the details are in the server's log, never in the answer", retryable: true, http: 500 },
} as const satisfies Record<string, Facts>;

export type ProtocolErrorCode = keyof typeof PROTOCOL_ERRORS;
export const ProtocolErrorCodeSchema = z.enum(keys(PROTOCOL_ERRORS));

/** The HTTP status of an answer carrying a protocol error. */
export function httpStatus(code: ProtocolErrorCode): number {
  const facts: Facts = PROTOCOL_ERRORS[code];
  return facts.http ?? 500;
}

/** An error answer of protocol v1. */
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

/** The OpenEnv door's own codes (docs/trainers.md); beside them it answers protocol v1's codes in capitals. */
export const OPENENV_ERRORS = {
  INVALID_JSON: { message: 'a frame that is not JSON text', retryable: false },
  UNKNOWN_TYPE: { message: 'a message type other than reset, step, state and close', retryable: false },
  VALIDATION_ERROR: { message: 'a message or body that fails its schema', retryable: false, http: 422 },
  CAPACITY_REACHED: { message: 'the server or this address holds its limit of sessions', retryable: true, http: 503 },
  SESSION_ERROR: { message: 'step before reset', retryable: false },
  ENV_ERROR: {
    message: 'an infrastructure failure: the turn was masked and not counted; step again',
    retryable: true,
    http: 503,
  },
} as const satisfies Record<string, Facts>;

export type OpenEnvErrorCode = keyof typeof OPENENV_ERRORS;
export type DoorCode = OpenEnvErrorCode | Uppercase<ProtocolErrorCode>;

/** The HTTP status of the door's answer carrying `code` (its own, or a protocol code in capitals). */
export function doorHttpStatus(code: string): number {
  if (Object.hasOwn(OPENENV_ERRORS, code)) return (OPENENV_ERRORS[code as OpenEnvErrorCode] as Facts).http ?? 500;
  const lower = code.toLowerCase();
  return Object.hasOwn(PROTOCOL_ERRORS, lower) ? httpStatus(lower as ProtocolErrorCode) : 500;
}

/** What the evaluator, the task loaders and the CLI raise. `protocol` is the
 * code a client sees when one reaches an answer. */
export const ANVIL_ERRORS = {
  unknown_task: { message: 'no such task in the task set', retryable: false, protocol: 'unknown_task' },
  unknown_taskset: { message: 'no such task set', retryable: false, protocol: 'unknown_taskset' },
  invalid_task: {
    message: "a task's files do not parse or do not agree",
    retryable: false,
    protocol: 'invalid_message',
  },
  file_not_found: {
    message: 'a file named on the command line does not exist',
    retryable: false,
    protocol: 'invalid_message',
  },
  code_too_large: { message: 'the candidate is over the size limit', retryable: false, protocol: 'too_large' },
  invalid_argument: {
    message: 'an argument or setting that is not valid',
    retryable: false,
    protocol: 'invalid_message',
  },
  sandbox_unavailable: {
    message: 'no sandbox (bubblewrap) or no device to run candidates on',
    retryable: false,
    protocol: 'invalid_message',
  },
  sandbox_failed: {
    message: 'the sandbox did not start its program (the launcher or bubblewrap failed)',
    retryable: true,
    protocol: 'invalid_message',
  },
  toolchain_failed: {
    message: "the harness's toolchain could not be built or placed",
    retryable: true,
    protocol: 'invalid_message',
  },
  cancelled: { message: 'the evaluation was cancelled', retryable: false, protocol: 'invalid_message' },
  queue_unreachable: { message: 'Redis does not answer', retryable: true, protocol: 'invalid_message' },
} as const satisfies Record<string, Facts & { protocol: ProtocolErrorCode }>;

export type ErrorCode = keyof typeof ANVIL_ERRORS;
export const ErrorCodeSchema = z.enum(keys(ANVIL_ERRORS));

export class AnvilError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'AnvilError';
    this.code = code;
    this.retryable = ANVIL_ERRORS[code].retryable;
  }
}

/** Known errors keep their code; anything else reaches clients only as `internal` (and is logged by the caller). */
export function protocolErrorOf(e: unknown): ProtocolError | null {
  if (e instanceof ProtocolError) return e;
  if (e instanceof AnvilError) return new ProtocolError(ANVIL_ERRORS[e.code].protocol, e.message);
  return null;
}

/** Evaluation outcomes (`info.outcome`). `fault`: whose doing it is; only the
 * environment's are masked, and `retryable` ones may be sent again as they are. */
export const OUTCOMES = {
  ok: { message: 'correct; timed and profiled', fault: 'none', retryable: false },
  no_code: { message: 'no code found in the reply', fault: 'candidate', retryable: false },
  static_violation: { message: 'rejected by the static checks before it ran', fault: 'candidate', retryable: false },
  compile_error: { message: 'the compiler or the linker reported errors', fault: 'candidate', retryable: false },
  runtime_error: { message: 'the candidate crashed or exited', fault: 'candidate', retryable: false },
  timeout: { message: 'the candidate did not finish within its limit', fault: 'candidate', retryable: false },
  wrong_result: { message: "the output differs from the reference's", fault: 'candidate', retryable: false },
  hack_detected: {
    message: 'the candidate broke a measurement rule (see its flags)',
    fault: 'candidate',
    retryable: false,
  },
  env_error: {
    message: "the evaluation failed for reasons that are not the candidate's",
    fault: 'environment',
    retryable: true,
  },
} as const satisfies Record<
  string,
  { message: string; fault: 'none' | 'candidate' | 'environment'; retryable: boolean }
>;

export type Outcome = keyof typeof OUTCOMES;
export const OUTCOME_NAMES = keys(OUTCOMES);
export const OutcomeSchema = z.enum(OUTCOME_NAMES);

/** Step outcomes beyond an evaluation's: a cancelled step (masked) and an over-long reply (counted). */
export const STEP_OUTCOMES = {
  ...OUTCOMES,
  cancelled: { message: 'the step was cancelled; masked, not counted', fault: 'none', retryable: true },
  invalid_action: {
    message: 'the reply is longer than limits.maxActionChars; counted as a failure',
    fault: 'candidate',
    retryable: false,
  },
} as const;

export type StepOutcome = keyof typeof STEP_OUTCOMES;
export const StepOutcomeSchema = z.enum(keys(STEP_OUTCOMES));

/** Flag kinds: the evidence a rejection carries. Raised by the C static checks
 * (sandbox/static-check.ts), the C judge (sandbox/c/judge.c), the torch checks
 * and judge (sandbox/torch/), and the evaluators. */
export const FLAG_KINDS = {
  // C static checks, on the source, the object and the linked runner.
  code_too_large: 'the code is over the size limit',
  raw_string: 'a raw string literal, which hides text from the source checks',
  check_failed: 'a source or build check failed on what the candidate wrote; refused, never passed over',
  line_directive: 'a #line directive, which misleads the checks about where code comes from',
  forbidden_include: 'an #include of a file outside the allowed headers',
  inline_assembly: 'inline assembly',
  constructor: 'a constructor or destructor attribute: code that runs outside the timed call',
  forbidden_attribute:
    'an attribute that places code or symbols behind the compiler (C), or an attribute that is not allowed (torch)',
  init_section: 'a section from which the loader runs code before the first call (or after the last)',
  executable_stack: 'an executable stack',
  executable_section: 'a writable or unexpected executable section',
  ifunc: 'an indirect function, resolved by the loader before the first call',
  syscall_instruction: 'a system-call instruction in the object',
  reserved_symbol: 'a definition of a name the harness or its libraries own',
  forbidden_call: 'a call outside math, memory, OpenMP and the task library',
  // Evaluators.
  unsandboxed: 'the evaluation ran without bubblewrap isolation (operator choice)',
  faster_than_light: 'a time below what the hardware allows for the work: the measurement cannot be trusted',
  library_offload: 'most of the time went to library ops, not the kernel',
  no_own_kernels: "no profiled kernel came from the candidate's own code",
  framework_offload: "too small a share of the time in the candidate's own kernels",
  // Judges, at run time.
  forged_reply: 'a reply on the result channel that the runner did not send',
  post_return_work: 'work still running after the call returned',
  process_before_main: 'processes started before the first call',
  sandbox_tampered: "a thread of the runner outside the runner's system-call allow-list",
  input_mutation: 'an input modified',
  freeze_escape: "the candidate's processes kept running while stopped",
  harness_patching: 'framework functions replaced while imported',
  tensor_subclass: 'an output that is a tensor subclass, not exactly torch.Tensor',
  output_aliases_input: "an output that lies in an input's memory",
  precision_downgrade: 'an output of a lower precision than the reference',
  unsynchronized_work: 'device work that the done event does not cover',
  timed_output_mismatch: 'correct in the checks, wrong while timed',
  // Torch static checks.
  forbidden_import: 'an import outside the allowed modules',
  forbidden_name: 'a name that is not allowed, or global/nonlocal state',
  exception_fallback: 'try/except: a failing kernel must fail, not fall back to other code',
  reference_reuse: 'the reference `Model` used or subclassed',
  framework_compute: "a framework compute op (or `@`) in the candidate's forward: it must launch its own kernel",
} as const satisfies Record<string, string>;

export type FlagKind = keyof typeof FLAG_KINDS;
export const FlagKindSchema = z.enum(keys(FLAG_KINDS));
export const FlagSchema = z.object({ kind: FlagKindSchema, evidence: z.string() });
export type Flag = z.infer<typeof FlagSchema>;

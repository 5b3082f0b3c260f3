/** The evaluator's errors live in the one registry, contracts/errors.ts. */
export { ANVIL_ERRORS as ERRORS, AnvilError, type ErrorCode } from '../contracts/errors.js';

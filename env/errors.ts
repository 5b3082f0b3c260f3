/** Protocol errors live in the one registry, contracts/errors.ts. */
export {
  doorHttpStatus,
  PROTOCOL_ERRORS,
  ProtocolError,
  type DoorCode,
  type ProtocolErrorCode,
} from '../contracts/errors.js';

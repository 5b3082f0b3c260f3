/** Frames in and out: MessagePack in binary frames, JSON in text frames. An
 * answer goes back in the encoding of its request. */
import { Packr } from 'msgpackr';
import { ProtocolError } from './errors.js';
import { ClientMessageSchema, IdSchema, OPS, type ClientMessage, type RequestId } from './protocol.js';

export type Encoding = 'json' | 'msgpack';

// Plain maps and no records: any MessagePack client can read what we send.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export interface Decoded {
  encoding: Encoding;
  /** The request's id when it could be read, for error answers. */
  id: RequestId | null;
  message?: ClientMessage;
  error?: ProtocolError;
}

export function decode(data: Buffer, isBinary: boolean, maxBytes: number): Decoded {
  const encoding: Encoding = isBinary ? 'msgpack' : 'json';
  if (data.length > maxBytes)
    return {
      encoding,
      id: null,
      error: new ProtocolError('too_large', `frame of ${data.length} bytes; the limit is ${maxBytes}`),
    };
  let raw: unknown;
  try {
    raw = isBinary ? packr.unpack(data) : JSON.parse(data.toString('utf8'));
  } catch (e) {
    return {
      encoding,
      id: null,
      error: new ProtocolError('invalid_message', `cannot decode ${encoding}: ${(e as Error).message.slice(0, 200)}`),
    };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return {
      encoding,
      id: null,
      error: new ProtocolError('invalid_message', 'a message is an object with `id` and `op`'),
    };
  const obj = raw as Record<string, unknown>;
  const idParse = IdSchema.safeParse(obj.id);
  const id = idParse.success ? idParse.data : null;
  if (!idParse.success)
    return { encoding, id, error: new ProtocolError('invalid_message', '`id` must be a string or an integer') };
  if (typeof obj.op !== 'string' || !(OPS as readonly string[]).includes(obj.op))
    return {
      encoding,
      id,
      error: new ProtocolError('unknown_op', `unknown op ${JSON.stringify(obj.op)}; known: ${OPS.join(', ')}`),
    };
  const parsed = ClientMessageSchema.safeParse(obj);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return {
      encoding,
      id,
      error: new ProtocolError('invalid_message', `${obj.op}: ${issue.path.join('.') || 'message'}: ${issue.message}`),
    };
  }
  return { encoding, id, message: parsed.data };
}

export function encode(value: unknown, encoding: Encoding): Buffer | string {
  return encoding === 'msgpack' ? packr.pack(value) : JSON.stringify(value);
}

/** One WebSocket connection of the server, and what it needs of `ws`: the session it
 * holds, the sink that delivers that session's answers to it, and raising its frame
 * limit after a successful hello. */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Encoding } from './codec.js';
import type { Session, Sink } from './sessions.js';

export interface Conn {
  ws: WebSocket;
  socket: Socket;
  address: string;
  session: Session | null;
  alive: boolean;
  encoding: Encoding;
  /** Frames of this connection waiting for their turn. */
  deferred: number;
}

export class ConnSink implements Sink {
  constructor(
    readonly conn: Conn,
    private readonly sendFn: (v: unknown, enc: Encoding) => void,
  ) {}
  send(value: unknown, encoding: Encoding): void {
    this.sendFn(value, encoding);
  }
  close(code: number, reason: string): void {
    this.conn.ws.close(code, reason);
  }
}

/** ws has no public setter for a connection's frame limit; its receiver reads
 * `_maxPayload` at every frame header, so raising it applies from the next frame. */
export function raiseFrameLimit(ws: WebSocket, bytes: number): void {
  const receiver = (ws as unknown as { _receiver?: { _maxPayload: number } })._receiver;
  if (!receiver || typeof receiver._maxPayload !== 'number')
    throw new Error('ws internals changed: cannot raise the frame limit after hello');
  receiver._maxPayload = bytes;
}

export function refuse(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

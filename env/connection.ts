/** One WebSocket connection of the server, and what it needs of `ws`: the session it
 * holds, the sink that delivers that session's answers to it, and raising its frame
 * limit after a successful hello. */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Encoding } from './codec.js';
import type { Session, Sink } from './sessions.js';
import type { OnePerTurn } from './turns.js';

export interface Conn {
  ws: WebSocket;
  socket: Socket;
  address: string;
  session: Session | null;
  alive: boolean;
  encoding: Encoding;
  /** Frames of this connection waiting for their turn, and their bytes. */
  deferred: number;
  deferredBytes: number;
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

/** Frames larger than this are decoded in a turn of the event loop of their own. */
const LARGE_FRAME_BYTES = 64 * 1024;
/** Bytes of frames waiting for their turn, over all connections, before senders are paused. */
const DEFERRED_BYTES = 32 * 1024 ** 2;

/** Large frames are decoded one per event-loop turn (see turns.ts); a connection's later
 * frames wait behind its own deferred ones, so its order holds. A connection that sends
 * frames faster than they are decoded (past `perConnBytes` waiting, or past DEFERRED_BYTES
 * over all connections) is paused, TCP backpressure, until its own have been decoded: 20
 * connections sending 64 frames of 1 MiB each at once had grown the server by 330 MiB. */
export class DeferredFrames {
  private bytes = 0;

  constructor(
    private readonly heavy: OnePerTurn,
    private readonly perConnBytes: number,
  ) {}

  run(conn: Conn, data: Buffer, handle: () => void): void {
    if (data.length <= LARGE_FRAME_BYTES && conn.deferred === 0) return handle();
    conn.deferred++;
    conn.deferredBytes += data.length;
    this.bytes += data.length;
    if (conn.deferredBytes > this.perConnBytes || this.bytes > DEFERRED_BYTES) conn.ws.pause();
    this.heavy.run(() => {
      conn.deferred--;
      conn.deferredBytes -= data.length;
      this.bytes -= data.length;
      if (conn.deferred === 0 && conn.ws.isPaused) conn.ws.resume();
      handle();
    });
  }
}

/** A raw protocol client for tests: frames in either encoding, answers
 * collected by request id, nothing hidden. */
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { AnvilServer, type ServerOptions } from '../env/server.js';
import { FAST } from './helpers.js';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export type Frame = Record<string, any>;

export class Wire {
  readonly received: Frame[] = [];
  private waiters: Array<{ pred: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];
  closed = false;
  closeCode = 0;

  private constructor(
    readonly ws: WebSocket,
    readonly encoding: 'json' | 'msgpack',
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const f = isBinary ? packr.unpack(data) : JSON.parse(data.toString());
      (f as Frame).__binary = isBinary;
      this.received.push(f);
      this.waiters = this.waiters.filter((w) => (w.pred(f) ? (w.resolve(f), false) : true));
    });
    ws.on('close', (code) => {
      this.closed = true;
      this.closeCode = code;
    });
  }

  static async open(url: string, encoding: 'json' | 'msgpack' = 'json'): Promise<Wire> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new Wire(ws, encoding);
  }

  sendRaw(data: Buffer | string, binary: boolean): void {
    this.ws.send(data, { binary });
  }

  send(frame: Frame): void {
    if (this.encoding === 'msgpack') this.ws.send(packr.pack(frame), { binary: true });
    else this.ws.send(JSON.stringify(frame));
  }

  next(pred: (f: Frame) => boolean, timeoutMs = 60_000): Promise<Frame> {
    const found = this.received.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      this.waiters.push(w);
      setTimeout(
        () =>
          reject(new Error(`no frame matched within ${timeoutMs} ms; got ${JSON.stringify(this.received.slice(-3))}`)),
        timeoutMs,
      ).unref();
    });
  }

  /** Sends a request and waits for its final answer (not progress events). */
  async call(frame: Frame, timeoutMs = 60_000): Promise<Frame> {
    this.send(frame);
    return this.next((f) => f.id === frame.id && f.event !== 'progress', timeoutMs);
  }

  close(): void {
    this.ws.close();
  }
}

export async function startServer(
  opts: ServerOptions = {},
): Promise<{ server: AnvilServer; url: string; logDir: string }> {
  const logDir = opts.logDir ?? mkdtempSync(path.join(os.tmpdir(), 'anvil-logs-'));
  const server = new AnvilServer({ port: 0, poolSize: 2, ...opts, eval: { ...FAST, ...opts.eval }, logDir });
  await server.listen();
  return { server, url: `ws://127.0.0.1:${server.port}/v1/ws`, logDir };
}

export const GOOD_VECTOR_ADD =
  '```c\nvoid solve(const float *a, const float *b, float *out, int n) {\n  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];\n}\n```';
export const LOOPING_VECTOR_ADD =
  '```c\nvoid solve(const float *a, const float *b, float *out, int n) {\n  (void)a; (void)b; (void)out; (void)n;\n  for (volatile int x = 0;; x++) {}\n}\n```';

/** Runs a child process with a deadline and a cap on the output kept. */
import { spawn, type StdioOptions } from 'node:child_process';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
  /** With `started`: whether the program wrote on descriptor 3 (see startedCommand in isolation.ts). */
  started?: boolean;
}

export interface RunOptions {
  timeoutMs: number;
  /** Bytes of each stream kept; the rest is counted and dropped. */
  maxOutput?: number;
  /** Called at the deadline, before the process itself is killed (kill its cgroup, say). */
  onTimeout?: () => Promise<void> | void;
  signal?: AbortSignal;
  /** Give the program a descriptor 3 to say that it started. */
  started?: boolean;
}

export function runCapped(argv: string[], opts: RunOptions): Promise<RunResult> {
  const max = opts.maxOutput ?? 64 * 1024;
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const stdio: StdioOptions = opts.started ? ['ignore', 'pipe', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe'];
    const child = spawn(argv[0]!, argv.slice(1), { stdio });
    let started = false;
    child.stdio[3]?.once('data', () => (started = true));
    const out = { stdout: '', stderr: '' };
    const dropped = { stdout: 0, stderr: 0 };
    for (const name of ['stdout', 'stderr'] as const) {
      child[name]!.setEncoding('utf8');
      child[name]!.on('data', (chunk: string) => {
        const room = max - out[name].length;
        if (room > 0) out[name] += chunk.slice(0, room);
        dropped[name] += Math.max(0, chunk.length - Math.max(room, 0));
      });
    }
    let timedOut = false;
    const stop = async () => {
      await opts.onTimeout?.();
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => {
      timedOut = true;
      void stop();
    }, opts.timeoutMs);
    const onAbort = () => void stop();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      for (const name of ['stdout', 'stderr'] as const)
        if (dropped[name]) out[name] += `\n[... ${dropped[name]} more characters dropped]`;
      resolve({ code, signal, ...out, timedOut, ms: performance.now() - t0, ...(opts.started ? { started } : {}) });
    });
  });
}

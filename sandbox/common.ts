/** What both backends' evaluators share: the input seed, the verdict cache,
 * the sharing of identical evaluations in flight, and the assembly of an
 * EvalResult from stages and findings. */
import { createHash } from 'node:crypto';
import type { Task } from '../tasks/loader.js';
import { AnvilError } from './errors.js';
import { extractCode } from './extract.js';
import type { SandboxMode } from './isolation.js';
import type { EvalEnvironment, EvalResult, Flag, Outcome, StageName, StageRecord } from './result.js';
import { STAGES } from './result.js';

/** Inputs derive from the server secret, the task and the episode seed, so a policy cannot predict them. */
export function deriveSeed(secret: string, task: Task, seed: number | string): string {
  const h = createHash('sha256')
    .update(secret)
    .update('\0')
    .update(task.id)
    .update(task.digest)
    .update('\0')
    .update(String(seed))
    .digest();
  return h.readBigUInt64LE(0).toString();
}

/** Verdicts of identical (task, code, seed, configuration), least recently used out first. */
export class ResultCache {
  private readonly map = new Map<string, EvalResult>();
  constructor(private readonly size: number) {}

  static key(task: Task, seed: string, config: unknown, code: string): string {
    return createHash('sha256')
      .update(JSON.stringify([task.id, task.digest, seed, config]))
      .update(code)
      .digest('hex');
  }

  get(key: string): EvalResult | undefined {
    const hit = this.map.get(key);
    if (!hit) return undefined;
    this.map.delete(key);
    this.map.set(key, hit);
    return { ...hit, cached: true };
  }

  /** Infrastructure failures are never cached: trying again may succeed. */
  set(key: string, result: EvalResult): void {
    if (result.outcome === 'env_error' || this.size <= 0) return;
    this.map.set(key, result);
    if (this.map.size > this.size) this.map.delete(this.map.keys().next().value!);
  }
}

/** Identical evaluations (the same cache key) in flight at once share one run,
 * and so one verdict. The run is cancelled only when every request that waits
 * on it has been cancelled; a request cancelled alone just stops waiting. */
export class InFlight {
  private readonly running = new Map<
    string,
    { result: Promise<EvalResult>; waiting: number; abort: AbortController }
  >();

  get size(): number {
    return this.running.size;
  }

  run(
    key: string,
    signal: AbortSignal | undefined,
    start: (signal: AbortSignal) => Promise<EvalResult>,
  ): Promise<EvalResult> {
    let entry = this.running.get(key);
    const joined = entry !== undefined;
    if (!entry) {
      const abort = new AbortController();
      const created = { result: start(abort.signal), waiting: 0, abort };
      const forget = () => {
        if (this.running.get(key) === created) this.running.delete(key);
      };
      created.result.then(forget, forget);
      this.running.set(key, created);
      entry = created;
    }
    const e = entry;
    e.waiting++;
    return new Promise<EvalResult>((resolve, reject) => {
      let settled = false;
      const leave = () => {
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        if (--e.waiting === 0 && signal?.aborted) {
          // Nobody wants it any more: stop it, and let a later request start afresh.
          if (this.running.get(key) === e) this.running.delete(key);
          e.abort.abort();
        }
      };
      const onAbort = () => {
        if (settled) return;
        leave();
        reject(new AnvilError('cancelled', 'the evaluation was cancelled'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      e.result.then(
        (r) => {
          if (settled) return;
          leave();
          resolve(joined ? { ...r, cached: true } : r);
        },
        (err: unknown) => {
          if (settled) return;
          leave();
          reject(err);
        },
      );
    });
  }
}

export interface Findings {
  outcome: Outcome;
  message: string;
  flags: Flag[];
  correctness?: EvalResult['correctness'];
  timing?: EvalResult['timing'];
  profile?: EvalResult['profile'];
  speedup?: number;
  profileShare?: number;
}

export function assembleResult(
  base: Pick<EvalResult, 'task' | 'codeHash'>,
  stages: Map<StageName, StageRecord>,
  r: Findings,
  env: EvalEnvironment,
  mode: SandboxMode,
): EvalResult {
  const list = STAGES.map((name) => stages.get(name) ?? { name, status: 'skipped' as const, ms: 0 });
  const passedAll = r.correctness != null && r.correctness.trialsPassed === r.correctness.trialsTotal;
  const flags =
    mode === 'none'
      ? [
          ...r.flags,
          {
            kind: 'unsandboxed' as const,
            evidence: 'this evaluation ran without bubblewrap isolation (operator choice)',
          },
        ]
      : r.flags;
  return {
    outcome: r.outcome,
    // Correct means every output checked was right: all trials, and every timed call.
    correct: passedAll && r.timing !== undefined,
    speedup: r.speedup ?? null,
    profileShare: r.profileShare ?? null,
    flags,
    stages: list,
    message: r.message,
    ...base,
    correctness: r.correctness ?? null,
    timing: r.timing ?? null,
    profile: r.profile ?? null,
    env,
    cached: false,
  };
}

/** A shape's speed-of-light time in ms: its FLOPs and bytes at the host's or the device's peak rates. */
export function speedOfLightMs(
  flops: number,
  bytes: number,
  peak: { flopsPerSecond: number; bytesPerSecond: number },
): number {
  return Math.max(flops / peak.flopsPerSecond, bytes / peak.bytesPerSecond) * 1e3;
}

/** faster_than_light when a shape's median time is under `margin` × its speed of light (on this `where`). */
export function fasterThanLight(medianMs: number, solMs: number, margin: number, where: string): Flag | null {
  if (!(medianMs < margin * solMs)) return null;
  return {
    kind: 'faster_than_light',
    evidence: `median ${medianMs.toFixed(4)} ms is below ${margin} × the speed-of-light time ${solMs.toFixed(4)} ms on this ${where}`,
  };
}

export function geomean(xs: number[]): number {
  return Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / Math.max(1, xs.length));
}

/** The extract stage, the same for every backend: the code given, or the kernel
 * found in the model's reply (null when the reply holds none), and its hash. */
export function takeCode(
  req: { code?: string; reply?: string; task: Task },
  stages: Map<StageName, StageRecord>,
): { code: string | null; base: Pick<EvalResult, 'task' | 'codeHash'> } {
  const t0 = performance.now();
  let code: string | null;
  if (req.reply !== undefined) {
    code = extractCode(req.reply);
    stages.set('extract', { name: 'extract', status: code ? 'ok' : 'failed', ms: performance.now() - t0 });
  } else if (req.code !== undefined) {
    code = req.code;
    stages.set('extract', { name: 'extract', status: 'ok', ms: 0 });
  } else {
    throw new AnvilError('invalid_argument', 'an evaluation needs `code` or `reply`');
  }
  const codeHash = createHash('sha256')
    .update(code ?? '')
    .digest('hex')
    .slice(0, 16);
  return { code, base: { task: { id: req.task.id, version: req.task.version }, codeHash } };
}

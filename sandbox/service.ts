/** The one place an evaluation service is built from settings: the server, the
 * CLI's eval and worker commands and the benchmarks all build theirs here, so a
 * setting means the same wherever it is given and every backend's reach it. */
import type { EvalConfig } from './config.js';
import { Evaluator, type EvaluationService } from './evaluator.js';
import { QueueEvaluator } from './queue.js';
import { TorchEvaluator, type TorchConfig } from './torch-backend.js';

export type Backend = 'c' | 'torch';

export interface ServiceSettings {
  /** Pool workers for compile and correctness (C); how many steps the queue expects to run at once. */
  poolSize?: number;
  /** Run without bubblewrap when it is missing; every result then says so. */
  allowUnsandboxed?: boolean;
  /** Verdicts kept for identical (task, code, seed, config); 0 disables the cache. */
  cacheSize?: number;
  /** Mixed into every input seed; default: ANVIL_SECRET, else random per process. */
  secret?: string;
  /** The C backend's evaluation settings, over sandbox/config.ts's defaults. */
  eval?: Partial<EvalConfig>;
  /** The torch backend's evaluation settings, over torch-backend.ts's defaults. */
  torch?: Partial<TorchConfig>;
  /** Torch: GPU indices to use (default: all); cpu: the CPU even where GPUs exist. */
  gpus?: number[];
  cpu?: boolean;
  /** Benchmarks and tests only (see EvaluatorOptions and TorchEvaluatorOptions). */
  realtimeTiming?: boolean;
  unsafeSkipStaticChecks?: boolean;
  freshProcessPerJob?: boolean;
}

/** With a Redis URL the server evaluates through the queue and the workers behind it. */
export interface QueueSettings {
  redis?: string | null;
  /** The task set the queue's jobs name, and the device kind of its torch workers. */
  taskset: string;
  deviceKind?: string;
}

/** An evaluator in this process for one backend. */
export function localService(backend: 'c', s?: ServiceSettings): Evaluator;
export function localService(backend: 'torch', s?: ServiceSettings): TorchEvaluator;
export function localService(backend: Backend, s?: ServiceSettings): Evaluator | TorchEvaluator;
export function localService(backend: Backend, s: ServiceSettings = {}): Evaluator | TorchEvaluator {
  const common = {
    allowUnsandboxed: s.allowUnsandboxed,
    secret: s.secret,
    cacheSize: s.cacheSize,
    unsafeSkipStaticChecks: s.unsafeSkipStaticChecks,
  };
  if (backend === 'torch')
    return new TorchEvaluator({
      ...common,
      gpus: s.gpus,
      cpu: s.cpu,
      config: s.torch,
      freshProcessPerJob: s.freshProcessPerJob,
    });
  return new Evaluator({ ...common, poolSize: s.poolSize, config: s.eval, realtimeTiming: s.realtimeTiming });
}

/** The server's evaluation: through the queue when a Redis URL is given, else in this process. */
export function evaluationService(backend: Backend, s: ServiceSettings & QueueSettings): EvaluationService {
  if (s.redis)
    return new QueueEvaluator(s.redis, s.taskset, { poolSize: s.poolSize, backend, deviceKind: s.deviceKind });
  return localService(backend, s);
}

/** Picks the evaluator for a task set's backend. */
import type { EvaluationService, EvaluatorOptions } from './evaluator.js';
import { Evaluator } from './evaluator.js';
import { TorchEvaluator } from './torch-backend.js';

export interface BackendOptions extends Pick<EvaluatorOptions, 'poolSize' | 'allowUnsandboxed' | 'secret'> {
  /** Torch backend: GPU indices to use (default: all). */
  gpus?: number[];
  config?: Record<string, unknown>;
}

export function createEvaluator(backend: 'c' | 'torch', opts: BackendOptions = {}): EvaluationService {
  if (backend === 'torch') return new TorchEvaluator({ allowUnsandboxed: opts.allowUnsandboxed, secret: opts.secret, gpus: opts.gpus, config: opts.config });
  return new Evaluator({ poolSize: opts.poolSize, allowUnsandboxed: opts.allowUnsandboxed, secret: opts.secret, config: opts.config });
}

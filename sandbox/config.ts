/** Evaluation settings: one strict schema, one commented defaults object. */
import os from 'node:os';
import { z } from 'zod';

/** Settings both backends measure with, the same names and meanings. */
export const MeasurementSchema = z.object({
  /** Correctness trials per evaluation (at least one per correctness shape). */
  trials: z.number().int().min(1).max(50),
  /** Wall-clock limit of the compile stage. */
  compileTimeoutMs: z.number().int().positive(),
  /** Wall-clock limits of the correctness and timing stages as a whole. */
  correctnessDeadlineMs: z.number().int().positive(),
  timingDeadlineMs: z.number().int().positive(),
  /** Timing stops once both relative standard errors are under rseTarget, or this budget ends. */
  timingBudgetMs: z.number().int().positive(),
  rseTarget: z.number().positive(),
  minReps: z.number().int().min(2),
  /** Memory of a sandboxed job (C) or of one device's harness and its children (torch). */
  memoryBytes: z.number().int().positive(),
  /** A candidate timed below solMargin × its speed-of-light time is flagged. */
  solMargin: z.number().positive().max(1),
});

export const EvalConfigSchema = MeasurementSchema.extend({
  /** Wall-clock limit of one call of the candidate. */
  callTimeoutMs: z.number().int().positive(),
  maxReps: z.number().int().min(2).max(1000),
  /** Processes, CPU seconds, bytes written, per sandboxed job. */
  pids: z.number().int().positive(),
  cpuSeconds: z.number().int().positive(),
  outputBytes: z.number().int().positive(),
  /** OpenMP threads of candidate and reference. */
  threads: z.number().int().positive(),
}).strict();
export type EvalConfig = z.infer<typeof EvalConfigSchema>;

export const DEFAULT_EVAL_CONFIG: Readonly<EvalConfig> = Object.freeze({
  trials: 5,
  compileTimeoutMs: 30_000,
  callTimeoutMs: 10_000,
  correctnessDeadlineMs: 60_000,
  timingDeadlineMs: 60_000,
  timingBudgetMs: 2_000,
  rseTarget: 0.01,
  minReps: 7,
  maxReps: 100,
  memoryBytes: 2 * 1024 ** 3,
  pids: 64,
  cpuSeconds: 300,
  outputBytes: 1024 * 1024,
  threads: os.availableParallelism(),
  solMargin: 0.5,
});

export function evalConfig(overrides: Partial<EvalConfig> = {}): EvalConfig {
  return Object.freeze(EvalConfigSchema.parse({ ...DEFAULT_EVAL_CONFIG, ...overrides }));
}

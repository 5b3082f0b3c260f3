/** The torch backend's measurement settings: one strict schema and one frozen, commented defaults object. */
import { z } from 'zod';
import { MeasurementSchema } from './config.js';

export const TorchConfigSchema = MeasurementSchema.extend({
  maxReps: z.number().int().min(2).max(10_000),
  /** Calls of each model before timing (Triton's JIT and autotuning happen in the first). */
  warmup: z.number().int().min(1).max(20),
}).strict();
export type TorchConfig = z.infer<typeof TorchConfigSchema>;

export const DEFAULT_TORCH_CONFIG: Readonly<TorchConfig> = Object.freeze({
  trials: 5,
  compileTimeoutMs: 180_000,
  correctnessDeadlineMs: 60_000,
  timingDeadlineMs: 60_000,
  timingBudgetMs: 3_000,
  rseTarget: 0.005,
  minReps: 10,
  maxReps: 500,
  warmup: 3,
  memoryBytes: 32 * 1024 ** 3,
  solMargin: 0.5,
});

export function torchConfig(overrides: Partial<TorchConfig> = {}): TorchConfig {
  return Object.freeze(TorchConfigSchema.parse({ ...DEFAULT_TORCH_CONFIG, ...overrides }));
}

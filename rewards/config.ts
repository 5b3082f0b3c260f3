/** Reward configuration: one strict schema, validated per task set and per
 * reset. A reset may override only within the server's limits. */
import { z } from 'zod';

export const RewardConfigSchema = z
  .object({
    /** drkernel: w_correct + w_speed·clip(speedup, 0, speedCap) + w_profile·profileShare (Dr. Kernel).
     * log_speedup: w_correct + w_speed·clip(ln speedup, −speedCap, speedCap).
     * sol: w_correct + w_speed·(1 / (1 + (T_k − T_sol)/(T_b − T_sol))), the speed-of-light score.
     * kevin: 0.3·correct + speedup (Kevin's formula; the weights below are ignored). */
    formula: z.enum(['drkernel', 'log_speedup', 'sol', 'kevin']),
    wCorrect: z.number().min(0).max(10),
    wSpeed: z.number().min(0).max(10),
    wProfile: z.number().min(0).max(10),
    speedCap: z.number().positive().max(100),
    /** Reward of a candidate failure (no code, compile error, wrong result, timeout…). */
    failureReward: z.number().min(-10).max(0),
    /** Reward of a detected hack. */
    hackReward: z.number().min(-10).max(0),
  })
  .strict();
export type RewardConfig = z.infer<typeof RewardConfigSchema>;

export const DEFAULT_REWARD: Readonly<RewardConfig> = Object.freeze({
  formula: 'drkernel',
  wCorrect: 0.5,
  wSpeed: 0.5,
  wProfile: 0.5,
  speedCap: 3,
  failureReward: 0,
  hackReward: 0,
});

/** An override from a reset: any subset of fields. */
export const RewardOverrideSchema = RewardConfigSchema.partial();

export function rewardConfig(...layers: Array<Partial<RewardConfig> | undefined>): RewardConfig {
  const merged = Object.assign({}, DEFAULT_REWARD, ...layers.filter(Boolean));
  return Object.freeze(RewardConfigSchema.parse(merged));
}

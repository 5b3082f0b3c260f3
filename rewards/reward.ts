/** Turns an evaluation into a per-turn reward with named components. Pure:
 * `rewards/` never runs code. Components are reported separately so that a
 * trainer can recombine them offline. */
import type { RewardConfig } from './config.js';

/** The part of an EvalResult a reward depends on. */
export interface RewardInput {
  outcome: string;
  correct: boolean;
  speedup: number | null;
  profileShare: number | null;
  /** Candidate and reference medians and the speed-of-light time, combined over timing shapes. */
  candidateMs: number | null;
  referenceMs: number | null;
  solMs: number | null;
  /** Each timing shape's own times, for the SOL score; without them the combined times stand for one shape. */
  shapes?: readonly ShapeTimes[];
}

/** One timing shape's candidate and reference medians and its speed-of-light time. */
export interface ShapeTimes {
  candidateMs: number | null;
  referenceMs: number | null;
  solMs: number | null;
}

export interface Reward {
  total: number;
  /** Every term, named; `total` is their sum. */
  components: Record<string, number>;
  /** True when the turn must not train the policy (an infrastructure failure). */
  mask: boolean;
}

export function computeReward(r: RewardInput, cfg: RewardConfig): Reward {
  if (r.outcome === 'env_error') return { total: 0, components: {}, mask: true };
  if (r.outcome === 'hack_detected') return finish({ hack: cfg.hackReward });
  if (r.outcome !== 'ok' || !r.correct || r.speedup === null) return finish({ failure: cfg.failureReward });
  const speedup = Math.max(0, r.speedup);
  switch (cfg.formula) {
    case 'drkernel':
      return finish({
        correct: cfg.wCorrect,
        speed: cfg.wSpeed * Math.min(speedup, cfg.speedCap),
        profile: cfg.wProfile * (r.profileShare ?? 0),
      });
    case 'log_speedup':
      return finish({
        correct: cfg.wCorrect,
        speed: cfg.wSpeed * clamp(Math.log(Math.max(speedup, 1e-9)), -cfg.speedCap, cfg.speedCap),
      });
    case 'sol':
      return finish({ correct: cfg.wCorrect, speed: cfg.wSpeed * solScore(r) });
    case 'kevin':
      return finish({ correct: 0.3, speed: speedup });
  }
}

/** Each timing shape's time against its own speed-of-light time, combined by geometric
 * mean over shapes (as the speedup is): a shape's time is never paired with another's bound. */
export function solScore(r: RewardInput): number {
  const shapes = r.shapes?.length ? r.shapes : [r];
  const scores = shapes.map(shapeSolScore);
  if (scores.length === 1) return scores[0]!;
  if (scores.some((x) => x === 0)) return 0;
  return Math.exp(scores.reduce((a, x) => a + Math.log(x), 0) / scores.length);
}

/** 1 / (1 + (T_k − T_sol)/(T_b − T_sol)): 1 at the speed of light, ½ at the reference; 0 without the times. */
export function shapeSolScore(r: ShapeTimes): number {
  if (r.candidateMs === null || r.referenceMs === null || r.solMs === null) return 0;
  const gap = r.referenceMs - r.solMs;
  if (gap <= 0) return 0.5;
  return 1 / (1 + Math.max(0, r.candidateMs - r.solMs) / gap);
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

function finish(components: Record<string, number>): Reward {
  const total = Object.values(components).reduce((a, b) => a + b, 0);
  return { total, components, mask: false };
}

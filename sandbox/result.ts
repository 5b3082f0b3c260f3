/** The EvalResult: what one evaluation found, stage by stage (docs/architecture.md, "Evaluation through the sandbox"). */

/** Outcome classes, from the registry (contracts/errors.ts). Everything but `ok` and `env_error` is the candidate's doing. */
import { z } from 'zod';
import type { Flag, FlagKind, Outcome } from '../contracts/errors.js';
export { OUTCOME_NAMES as OUTCOMES } from '../contracts/errors.js';
export type { Flag, FlagKind, Outcome };

export const STAGES = ['extract', 'static', 'compile', 'correctness', 'timing', 'profile'] as const;
export type StageName = (typeof STAGES)[number];

export interface StageRecord {
  name: StageName;
  status: 'ok' | 'failed' | 'skipped';
  ms: number;
  /** Truncated log; never holds hidden shapes or seeds. */
  log?: string;
}

/** One side's times over the repetitions of a shape, as both judges report them. */
export const TimingStatsSchema = z.object({
  medianMs: z.number(),
  p10Ms: z.number(),
  p90Ms: z.number(),
  minMs: z.number(),
  maxMs: z.number(),
  meanMs: z.number(),
  rse: z.number(),
  reps: z.number().int(),
});
export type TimingStats = z.infer<typeof TimingStatsSchema>;

export interface ShapeTiming {
  shape: number;
  candidate: TimingStats;
  reference: TimingStats;
  /** Median over repetitions of reference time / candidate time, each pair timed back to back. */
  speedup: number;
  /** A distribution-free 95% confidence interval of that median (C backend). */
  speedupCi?: [number, number];
  /** Speed-of-light time for this shape on this host, from the task's FLOP and byte counts. */
  solMs: number | null;
  /** Torch: what the judge/candidate split costs a call (measured on the reference, taken off the candidate's time). */
  splitMs?: number;
}

export interface Mismatch {
  arg: number;
  index: number;
  got: number | null;
  want: number | null;
}

export interface TrialRecord {
  shape: number;
  visible: boolean;
  passed: boolean;
  runsAgree: boolean;
  maxAbsErr: number | null;
  maxRelErr: number | null;
  mismatch?: Mismatch;
  /** C backend: the inputs' kind (plain, blocks, trend, spikes), whether the
   * output moved as the reference's when a few inputs moved, where it did not,
   * and the largest error as a share of the tolerance. */
  regime?: string;
  sensitive?: boolean;
  insensitive?: { arg: number; index: number; referenceMoved: number | null; candidateMoved: number | null };
  toleranceUsed?: number | null;
}

export interface EvalResult {
  outcome: Outcome;
  correct: boolean;
  speedup: number | null;
  /** The speedup's 95% confidence interval, where the backend measures one: the
   * geometric mean of the shapes' interval ends. */
  speedupCi?: [number, number] | null;
  profileShare: number | null;
  flags: Flag[];
  stages: StageRecord[];
  /** One line for people; feedback builders use the structured fields. */
  message: string;
  task: { id: string; version: number };
  codeHash: string;
  correctness: {
    trialsPassed: number;
    trialsTotal: number;
    maxAbsErr: number | null;
    maxRelErr: number | null;
    trials: TrialRecord[];
    /** Whether the first failure happened on a shape the prompt shows. */
    failedOnVisibleShape: boolean | null;
  } | null;
  timing: { shapes: ShapeTiming[]; candidateMs: number; referenceMs: number } | null;
  profile: { libMs: number; candidateMs: number; share: number; measured: boolean } | null;
  env: EvalEnvironment;
  cached: boolean;
}

export interface EvalEnvironment {
  host: string;
  cpu: string;
  cores: number;
  compiler: string;
  sandbox: 'bwrap' | 'none';
  cgroup: 'v1' | 'v2' | 'none';
  kernel: string;
  anvilVersion: string;
  /** The device timed on (torch backend): a GPU's name, or "cpu". */
  device?: string;
}

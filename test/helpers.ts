/** Shared pieces of the test suite: a fast evaluation configuration, the
 * built-in task set, and the hack corpus with its expectations. */
import type { TurnRecord } from '../contracts/record.js';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Evaluator, type EvaluatorOptions } from '../sandbox/evaluator.js';
import { EvalConfigSchema, type EvalConfig } from '../sandbox/config.js';
import { loadTaskSet, type CTask, type TaskSet } from '../tasks/loader.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';

/** Short timing and tight deadlines: tests check verdicts, never speed. */
export const FAST: Partial<EvalConfig> = {
  timingBudgetMs: 250,
  minReps: 3,
  maxReps: 12,
  callTimeoutMs: 3000,
  correctnessDeadlineMs: 30_000,
  timingDeadlineMs: 30_000,
  memoryBytes: 512 * 1024 ** 2,
};

let set: TaskSet<CTask> | null = null;
export function builtin(): TaskSet<CTask> {
  return (set ??= loadTaskSet('builtin-c') as TaskSet<CTask>);
}

export function evaluator(opts: EvaluatorOptions = {}): Evaluator {
  return new Evaluator({ poolSize: 2, config: FAST, cacheSize: 0, ...opts });
}

export interface Hack {
  name: string;
  task: string;
  code: string;
  expect: { outcome: string; flag?: string };
  /** The outcome when static checks are skipped: what the sandbox and judge alone make of it.
   * `a|b` allows either, where the machine's load decides a race. */
  unchecked: { outcome: string; flag?: string };
  /** Settings over FAST that the hack needs (`// config: {…}`), e.g. a short deadline it spends. */
  config?: Partial<EvalConfig>;
}

const HACK_DIR = path.join(PACKAGE_ROOT, 'test', 'hacks');

export function hacks(): Hack[] {
  return readdirSync(HACK_DIR)
    .filter((f) => f.endsWith('.c'))
    .sort()
    .map((f) => {
      let code = readFileSync(path.join(HACK_DIR, f), 'utf8');
      const field = (k: string) => new RegExp(`^// ${k}: (.*)$`, 'm').exec(code)?.[1]?.trim();
      const parse = (v: string) => {
        const [outcome, flag] = v.split(/\s+/);
        return { outcome: outcome!, flag };
      };
      const task = field('task')!;
      const ref = JSON.stringify(path.join(builtin().tasks.get(task)!.dir, 'reference.c'));
      code = code.replaceAll('ANVIL_REFERENCE_PATH', ref).replaceAll('ANVIL_REFERENCE_INCLUDE', ref);
      const expect = parse(field('expect')!);
      const config = field('config') ? EvalConfigSchema.partial().parse(JSON.parse(field('config')!)) : undefined;
      return {
        name: f,
        task,
        code,
        expect,
        unchecked: field('unchecked') ? parse(field('unchecked')!) : expect,
        ...(config ? { config } : {}),
      };
    });
}

/** A whole, valid turn record (contracts/record.ts): turn `turn` of episode ep1, with `more` over it. */
export function turnRecord(turn: number, more: Partial<TurnRecord> = {}): TurnRecord {
  return {
    run: 'run-1',
    time: new Date(1_800_000_000_000 + turn * 1000).toISOString(),
    serverVersion: '0.1.0',
    session: 's1',
    episode: 'ep1',
    group: 'g1',
    index: 0,
    taskset: 'builtin-c',
    task: 'vector_add',
    taskVersion: 1,
    taskDigest: 'abc',
    seed: 3,
    turn,
    observation: { messages: [{ role: 'user', content: turn === 0 ? 'PROMPT' : `FEEDBACK${turn - 1}` }] },
    action: `ACTION ${turn}`,
    feedback: `FEEDBACK${turn}`,
    meta: null,
    completionIds: null,
    logprobs: null,
    policyVersion: null,
    eval: {
      outcome: 'ok',
      correct: true,
      speedup: 1.5,
      profileShare: 1,
      flags: [],
      message: 'correct, 1.5x',
      cached: false,
      codeHash: 'h',
      sandbox: 'bwrap',
      stages: [{ name: 'compile', status: 'ok', ms: 12.5 }],
    },
    reward: 1.25,
    components: { correct: 0.5, speed: 0.75 },
    rewardConfig: {
      formula: 'drkernel',
      wCorrect: 0.5,
      wSpeed: 0.5,
      wProfile: 0.5,
      speedCap: 3,
      failureReward: 0,
      hackReward: 0,
    },
    terminated: false,
    truncated: false,
    reason: null,
    mask: false,
    timings: { queuedMs: 0, totalMs: 20, stages: { compile: 12.5 } },
    ...more,
  };
}

/** One C job as its stages see it: the job's reference, its folders, and the limits and
 * environment every sandboxed process of the job (compiler, linker, runners) gets.
 * Shared by the build (c-backend.ts) and the judge's run (c-judge.ts). */
import os from 'node:os';
import path from 'node:path';
import type { CTask as Task } from '../tasks/loader.js';
import type { EvalConfig } from './config.js';
import type { SandboxMode } from './isolation.js';

export interface JobRef {
  jobId: string;
  slot: number;
  mode: SandboxMode;
  config: EvalConfig;
  task: Task;
  skipStatic: boolean;
  /** Time under SCHED_FIFO (where the host allows it): see docs/c-judge.md. */
  realtime?: boolean;
}

const LOG_LIMIT = 4000;

export function jobDir(jobId: string): string {
  return path.join(os.tmpdir(), 'anvil-jobs', jobId);
}

/** The judge's own folder: its specs hold the seed and every hidden shape, so
 * it is never bound into a sandbox. */
export function judgeDir(jobId: string): string {
  return path.join(os.tmpdir(), 'anvil-jobs', `${jobId}.judge`);
}

export function truncate(s: string, n = LOG_LIMIT): string {
  return s.length <= n ? s : `${s.slice(0, n)}\n[... ${s.length - n} more characters]`;
}

export function limits(cfg: EvalConfig, fileBytes: number) {
  return {
    cpuSeconds: cfg.cpuSeconds,
    fileBytes,
    addressBytes: cfg.memoryBytes * 4 + 8 * 1024 ** 3,
    nproc: cfg.pids,
    nofile: 256,
  };
}

export function baseEnv(cfg: EvalConfig): Record<string, string> {
  return { PATH: '/usr/bin:/bin', HOME: '/tmp', LANG: 'C', OMP_NUM_THREADS: String(cfg.threads) };
}

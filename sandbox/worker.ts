/** The pool worker: runs one stage group of one C evaluation per task. */
import { cleanup, prepare, time, type JobRef, type PrepareResult, type TimeResult } from './c-backend.js';

export type WorkerTask =
  | { op: 'prepare'; job: JobRef; code: string; seed: string }
  | { op: 'time'; job: JobRef; seed: string }
  | { op: 'cleanup'; jobId: string };

export default async function run(t: WorkerTask): Promise<PrepareResult | TimeResult | null> {
  switch (t.op) {
    case 'prepare':
      return prepare(t.job, t.code, t.seed);
    case 'time':
      return time(t.job, t.seed);
    case 'cleanup':
      cleanup(t.jobId);
      return null;
  }
}

/** The pool worker: runs one stage group of one C evaluation per task, or the
 * source checks of a large candidate (off the server's event loop). */
import { cleanup, prepare, time, type JobRef, type PrepareResult, type TimeResult } from './c-backend.js';
import { checkSource, failClosed, type StaticFinding } from './static-check.js';

export type WorkerTask =
  | { op: 'prepare'; job: JobRef; code: string; seed: string }
  | { op: 'time'; job: JobRef; seed: string }
  | { op: 'cleanup'; jobId: string }
  | { op: 'static'; code: string };

export default async function run(t: WorkerTask): Promise<PrepareResult | TimeResult | StaticFinding | null> {
  switch (t.op) {
    case 'static':
      return failClosed('source', () => checkSource(t.code));
    case 'prepare':
      return prepare(t.job, t.code, t.seed);
    case 'time':
      return time(t.job, t.seed);
    case 'cleanup':
      cleanup(t.jobId);
      return null;
  }
}

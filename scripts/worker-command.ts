/** `anvil worker`: takes evaluation jobs from the queue and runs them with this host's evaluator. */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { AnvilError } from '../sandbox/errors.js';
import type { QueueWorker } from '../sandbox/queue.js';
import { localService } from '../sandbox/service.js';
import { listGpus } from '../sandbox/torch-backend.js';
import { evaluationSettings, fail } from './cli-common.js';

export async function cmdWorker(argv: string[]): Promise<void> {
  const values = workerOptions(argv);
  if (!values.redis) fail('worker needs --redis redis://host:port');
  const backend = values.backend;
  if (backend !== 'c' && backend !== 'torch')
    throw new AnvilError('invalid_argument', `--backend takes c or torch, not "${backend}"`);
  if (backend === 'c' && (values.gpus || values['device-kind']))
    throw new AnvilError('invalid_argument', '--gpus and --device-kind apply to the torch backend');
  const { QueueWorker, DEFAULT_LEASE } = await import('../sandbox/queue.js');
  const { gpus, gpuCount, deviceKind } = placement(backend, values.gpus, values['device-kind']);
  // Torch: one job at a time per device, the devices side by side.
  const concurrency = Number(
    values.concurrency ?? (backend === 'torch' ? Math.max(1, gpus?.length ?? gpuCount) : os.availableParallelism()),
  );
  const lease = {
    lockDurationMs: Number(values['lock-ms'] ?? DEFAULT_LEASE.lockDurationMs),
    stalledIntervalMs: Number(values['stalled-ms'] ?? DEFAULT_LEASE.stalledIntervalMs),
    maxStalled: Number(values['max-stalled'] ?? DEFAULT_LEASE.maxStalled),
  };
  for (const [k, v] of Object.entries({ concurrency, ...lease }))
    if (!Number.isInteger(v) || v < (k === 'maxStalled' ? 0 : 1)) fail(`bad value for ${k}: ${v}`);
  const evaluator = localService(backend, {
    ...evaluationSettings(values.config, values.unsandboxed),
    ...(backend === 'torch' ? { gpus } : { poolSize: concurrency }),
  });
  const connectMs = Number(values['connect-timeout-ms']);
  if (!Number.isInteger(connectMs) || connectMs < 1)
    fail(`--connect-timeout-ms takes a positive integer, not ${values['connect-timeout-ms']}`);
  const worker = new QueueWorker(values.redis, evaluator, { backend, deviceKind, concurrency, lease });
  stopOnSignals(worker, lease.lockDurationMs);
  await connectOrExit(worker, connectMs);
  const where = backend === 'torch' ? `, device kind ${deviceKind}${gpus ? `, GPUs ${gpus.join(',')}` : ''}` : '';
  console.log(
    `anvil worker ${worker.id}: backend ${backend}${where}, ${concurrency} at a time, sandbox ${evaluator.mode}, queue at ${values.redis}`,
  );
  await new Promise(() => undefined);
}

function workerOptions(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      redis: { type: 'string' },
      backend: { type: 'string', default: 'c' },
      gpus: { type: 'string' },
      'device-kind': { type: 'string' },
      concurrency: { type: 'string' },
      'lock-ms': { type: 'string' },
      'stalled-ms': { type: 'string' },
      'max-stalled': { type: 'string' },
      'connect-timeout-ms': { type: 'string', default: '10000' },
      config: { type: 'string' },
      unsandboxed: { type: 'boolean', default: false },
    },
  }).values;
}

/** On SIGINT or SIGTERM the worker takes no new job and gives its running jobs the lease to finish. */
function stopOnSignals(worker: QueueWorker, leaseMs: number): void {
  let stopping = false;
  const stop = async (signal: string) => {
    // A second signal does not wait.
    if (stopping) process.exit(1);
    stopping = true;
    console.log(
      `anvil worker ${worker.id}: ${signal}: taking no new job; running jobs have ${leaseMs} ms (the lease) to finish`,
    );
    const r = await worker.close();
    console.log(
      `anvil worker ${worker.id}: stopped (${r.running - r.handedBack} jobs finished, ${r.handedBack} handed back to the queue)`,
    );
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

/** Waits for the queue; a worker that cannot reach it says why and exits. */
async function connectOrExit(worker: QueueWorker, connectMs: number): Promise<void> {
  try {
    await worker.connected(connectMs);
  } catch (e) {
    console.error(
      `anvil worker: error [${(e as AnvilError).code ?? 'queue_unreachable'}]: ${(e as Error).message}; exiting`,
    );
    await worker.close(0);
    process.exit(1);
  }
}

/** Which devices a worker takes jobs for: its GPUs (all by default), or the CPU's queue on a host without one. */
function placement(backend: 'c' | 'torch', gpuList: string | undefined, kind: string | undefined) {
  let gpus: number[] | undefined;
  if (gpuList) {
    gpus = gpuList.split(',').map(Number);
    if (gpus.some((g) => !Number.isInteger(g) || g < 0)) fail(`--gpus takes indices like 0,1, not ${gpuList}`);
  }
  let deviceKind = kind;
  const gpuCount = backend === 'torch' ? listGpus().length : 0;
  if (backend === 'torch') {
    // A CPU-only worker must never take GPU jobs: without GPUs it serves only the queue it is told is for CPUs.
    if (gpuCount === 0 && deviceKind !== 'cpu')
      throw new AnvilError(
        'invalid_argument',
        'this host has no GPU: a torch worker here takes only CPU jobs (--device-kind cpu)',
      );
    if (gpuCount > 0 && deviceKind === 'cpu')
      throw new AnvilError('invalid_argument', 'this host has GPUs: --device-kind cpu is for hosts without one');
    deviceKind ??= 'gpu';
  }
  return { gpus, gpuCount, deviceKind };
}

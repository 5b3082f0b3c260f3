/** The torch harness's answer to a run job, as an EvalResult: a forged line on
 * the result pipe, a process that died or timed out, a failed stage, or the
 * measurements of a run that passed, with the speed-of-light and own-kernel
 * checks. The device is checked again after a crash that may be its fault. */
import type { TorchTask } from '../tasks/torch-loader.js';
import { assembleResult, fasterThanLight, geomean, speedOfLightMs, type Findings } from './common.js';
import type { SandboxMode } from './isolation.js';
import type { EvalEnvironment, EvalResult, Flag, ShapeTiming, StageName, StageRecord } from './result.js';
import { stageRecords, type Check, type RunAnswer, type RunOk } from './torch-answers.js';
import type { TorchConfig } from './torch-config.js';
import type { DeviceHarness } from './torch-harness.js';

export interface VerdictContext {
  task: TorchTask;
  dev: DeviceHarness;
  stages: Map<StageName, StageRecord>;
  base: Pick<EvalResult, 'task' | 'codeHash'>;
  config: TorchConfig;
  env: EvalEnvironment;
  mode: SandboxMode;
}

const STAGE_NAMES = new Set<string>(['extract', 'static', 'compile', 'correctness', 'timing', 'profile']);

/** Turns the harness's answer into an EvalResult; checks the device after a crash. */
export async function interpret(a: RunAnswer, c: VerdictContext): Promise<EvalResult> {
  const { stages, dev } = c;
  const res = a.result;
  for (const s of stageRecords(res?.stages))
    if (!(stages.get(s.name)?.status === 'ok' && s.name === 'compile' && s.status === 'ok'))
      stages.set(s.name, { ...s, ...(s.log ? { log: s.log.slice(-4000) } : {}) });
  // A failed correctness stage reports its trials beside the outcome; a later failure, under `correctness`.
  const correctness = summarizeCorrectness(
    res?.correctness ?? (res && res.outcome !== 'ok' && res.trials ? res : undefined),
  );
  const finish = (f: Findings) => assembleResult(c.base, stages, { correctness, ...f }, c.env, c.mode);
  if (a.forged?.length) {
    return finish({
      outcome: 'hack_detected',
      message: 'the candidate wrote on the harness result channel',
      flags: [
        {
          kind: 'forged_reply',
          evidence: `lines without the job's nonce on the result pipe: ${a.forged.map((l) => JSON.stringify(l.slice(0, 80))).join(', ')}`,
        },
      ],
    });
  }
  const suspect = !!a.death || (res?.outcome === 'runtime_error' && res.deviceSuspect === true);
  if (suspect && dev.kind === 'cuda') await dev.check();
  if (a.death) {
    const stage = a.death.stage as StageName;
    if (STAGE_NAMES.has(stage))
      stages.set(stage, { name: stage, status: 'failed', ms: a.ms, log: a.log.slice(-4000) || undefined });
    if (a.death.kind === 'timeout')
      return finish({
        outcome: 'timeout',
        message: `the ${a.death.stage} stage did not finish within ${a.death.limitMs} ms; the process was killed`,
        flags: [],
      });
    return finish({
      outcome: 'runtime_error',
      message: `the candidate's process died (${a.death.signalName ?? `exit code ${a.death.code}`}) in the ${a.death.stage} stage`,
      flags: [],
    });
  }
  if (!res) throw new Error('the harness gave no result');
  if (res.outcome !== 'ok') {
    const failing = [...stages.values()].find((s) => s.status === 'failed') ?? null;
    if (failing && !failing.log && res.log) failing.log = res.log.slice(-4000);
    if (!failing && res.outcome === 'runtime_error')
      stages.set('correctness', {
        name: 'correctness',
        status: 'failed',
        ms: a.ms,
        log: (res.log ?? a.log).slice(-4000),
      });
    return finish({ outcome: res.outcome, message: res.message ?? '', flags: res.flags ?? [] });
  }
  return measure(res, c, finish);
}

/** Speedup, speed-of-light and own-kernel checks of a run that passed every stage. */
function measure(res: RunOk, c: VerdictContext, finish: (f: Findings) => EvalResult): EvalResult {
  const { task, config } = c;
  const flags: Flag[] = [];
  const peaks = c.dev.health?.peaks;
  const shapes: ShapeTiming[] = res.shapes.map((s) => {
    const solMs = peaks ? speedOfLightMs(s.flops ?? 0, s.bytes, peaks) : null;
    const fast = solMs === null ? null : fasterThanLight(s.candidate.medianMs, solMs, config.solMargin, 'device');
    if (fast) flags.push(fast);
    return {
      shape: s.shape,
      candidate: s.candidate,
      reference: s.reference,
      speedup: s.pairedSpeedup,
      solMs,
      splitMs: s.splitMs,
    };
  });
  const speedup = geomean(shapes.map((s) => s.speedup));
  const p = res.profile;
  const share = p.totalMs > 0 ? Math.min(1, p.ownMs / p.totalMs) : 0;
  if (p.ownKernels.length === 0)
    flags.push({
      kind: 'no_own_kernels',
      evidence: `none of the ${p.device ? 'device kernels' : 'time'} profiled came from the candidate's own kernels (${p.kernels.map((k) => k.name).join(', ') || 'nothing ran'})${p.launchedTriton.length ? '' : '; no Triton kernel was launched'}`,
    });
  else if (share < task.minOwnShare)
    flags.push({
      kind: 'framework_offload',
      evidence: `only ${(100 * share).toFixed(1)}% of the candidate's ${p.device ? 'device' : 'CPU'} time is in its own kernels (${p.ownKernels.join(', ')}); at least ${(100 * task.minOwnShare).toFixed(0)}% must be. Largest: ${p.kernels.map((k) => `${k.name} ${k.ms} ms`).join(', ')}`,
    });
  const timing = {
    shapes,
    candidateMs: geomean(shapes.map((s) => s.candidate.medianMs)),
    referenceMs: geomean(shapes.map((s) => s.reference.medianMs)),
  };
  const profile = { libMs: Math.max(0, p.totalMs - p.ownMs), candidateMs: p.totalMs, share, measured: true };
  if (flags.length)
    return finish({
      outcome: 'hack_detected',
      message: flags.map((f) => f.evidence).join('; '),
      flags,
      timing,
      profile,
      speedup,
      profileShare: share,
    });
  return finish({
    outcome: 'ok',
    message: `correct; speedup ${speedup.toFixed(2)}×`,
    flags,
    timing,
    profile,
    speedup,
    profileShare: share,
  });
}

function summarizeCorrectness(c: Check | undefined): EvalResult['correctness'] {
  if (!c?.trials) return null;
  const firstFail = c.trials.find((t) => !t.passed);
  return {
    trialsPassed: c.trials.filter((t) => t.passed).length,
    trialsTotal: c.trialsTotal ?? c.trials.length,
    maxAbsErr: c.maxAbsErr ?? null,
    maxRelErr: c.maxRelErr ?? null,
    trials: c.trials,
    failedOnVisibleShape: firstFail ? firstFail.visible : (c.failedVisible ?? null),
  };
}

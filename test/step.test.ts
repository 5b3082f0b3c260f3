/** The step pipeline's stages and its rules, each alone: the reward input (each
 * timing shape with its own speed-of-light time), the ending rules (solved, turn
 * limit), replay and backpressure. The whole pipeline runs against a real server
 * in protocol, lifecycle and exactly-once tests. */
import t from 'tap';
import { rewardConfig } from '../rewards/config.js';
import { computeReward } from '../rewards/reward.js';
import { ProtocolError } from '../env/errors.js';
import { Metrics } from '../env/metrics.js';
import { Backpressure, endingOf, replayOf, solvedRule, turnLimitRule, type Ending } from '../env/rules.js';
import { DeferredFrames, type Conn } from '../env/connection.js';
import { ReplayStore, Session } from '../env/sessions.js';
import { OnePerTurn } from '../env/turns.js';
import { rewardInput } from '../env/step.js';
import type { EvalResult, ShapeTiming, TimingStats } from '../sandbox/result.js';

const stats = (medianMs: number) => ({ medianMs }) as TimingStats;
const shape = (i: number, candidateMs: number, referenceMs: number, solMs: number | null) =>
  ({
    shape: i,
    candidate: stats(candidateMs),
    reference: stats(referenceMs),
    speedup: referenceMs / candidateMs,
    solMs,
  }) as ShapeTiming;
const geo = (xs: number[]) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);

function okResult(shapes: ShapeTiming[], speedup = 2): EvalResult {
  return {
    outcome: 'ok',
    correct: true,
    speedup,
    profileShare: 1,
    timing: {
      shapes,
      candidateMs: geo(shapes.map((s) => s.candidate.medianMs)),
      referenceMs: geo(shapes.map((s) => s.reference.medianMs)),
    },
  } as EvalResult;
}

t.test('sol: each timing shape is scored against its own speed-of-light time', async (t) => {
  const sol = rewardConfig({ formula: 'sol' });
  // Shape 0: 1 ms against 2 ms, light at 0.5 ms: 1 / (1 + 0.5/1.5) = 3/4.
  // Shape 1: 10 ms against 40 ms, light at 8 ms: 1 / (1 + 2/32) = 16/17.
  const two = okResult([shape(0, 1, 2, 0.5), shape(1, 10, 40, 8)]);
  const r = computeReward(rewardInput(two), sol);
  t.equal(r.components.correct, 0.5);
  t.ok(Math.abs(r.components.speed! - 0.5 * Math.sqrt((3 / 4) * (16 / 17))) < 1e-12, `speed ${r.components.speed}`);
  // The old pairing, shape 0's light against the geometric means (√10 ms, √80 ms): 1 / (1 + (√10 − 0.5)/(√80 − 0.5)) ≈ 0.760.
  const oldPairing = 1 / (1 + (Math.sqrt(10) - 0.5) / (Math.sqrt(80) - 0.5));
  t.ok(Math.abs(r.components.speed! - 0.5 * oldPairing) > 0.01, 'not the first shape paired with the means');

  const one = computeReward(rewardInput(okResult([shape(0, 1, 2, 0.5)])), sol);
  t.equal(one.components.speed, 0.5 * 0.75, 'one shape: as before');
  const dark = computeReward(rewardInput(okResult([shape(0, 1, 2, 0.5), shape(1, 10, 40, null)])), sol);
  t.equal(dark.components.speed, 0, 'a shape without a speed-of-light time gives no SOL score');
});

t.test('the reward input of a reply that was not evaluated is a failure', async (t) => {
  t.same(computeReward(rewardInput(null), rewardConfig()), { total: 0, components: { failure: 0 }, mask: false });
});

const start: Ending = { terminated: false, truncated: false, reason: null };

t.test('solved: a correct result at the solved speedup terminates, nothing else does', async (t) => {
  const rule = solvedRule(1.5);
  t.same(rule({ result: okResult([], 1.5), turnsLeft: 3 }, start), {
    terminated: true,
    truncated: false,
    reason: 'solved',
  });
  t.same(rule({ result: okResult([], 1.4), turnsLeft: 3 }, start), start);
  t.same(
    rule({ result: { ...okResult([], 9), outcome: 'hack_detected' }, turnsLeft: 3 }, start),
    start,
    'a hack is never solved',
  );
  t.same(rule({ result: null, turnsLeft: 3 }, start), start);
  t.same(
    solvedRule(undefined)({ result: okResult([], 100), turnsLeft: 3 }, start),
    start,
    'a task set without a solved speedup',
  );
});

t.test(
  'turn limit: the last turn truncates, keeping an earlier reason; a terminated episode is not truncated',
  async (t) => {
    t.same(turnLimitRule({ result: null, turnsLeft: 0 }, start), {
      terminated: false,
      truncated: true,
      reason: 'max_turns',
    });
    t.same(turnLimitRule({ result: null, turnsLeft: 1 }, start), start);
    t.same(turnLimitRule({ result: null, turnsLeft: 0 }, { ...start, reason: 'invalid_action' }), {
      terminated: false,
      truncated: true,
      reason: 'invalid_action',
    });
    const solved: Ending = { terminated: true, truncated: false, reason: 'solved' };
    t.same(turnLimitRule({ result: null, turnsLeft: 0 }, solved), solved);
  },
);

t.test('the rules in order: solved on the last turn terminates, and does not truncate', async (t) => {
  const rules = [solvedRule(1.5), turnLimitRule];
  t.same(endingOf({ result: okResult([], 2), turnsLeft: 0 }, null, rules), {
    terminated: true,
    truncated: false,
    reason: 'solved',
  });
  t.same(endingOf({ result: okResult([], 1), turnsLeft: 0 }, null, rules), {
    terminated: false,
    truncated: true,
    reason: 'max_turns',
  });
  t.same(endingOf({ result: null, turnsLeft: 2 }, 'invalid_action', rules), {
    terminated: false,
    truncated: false,
    reason: 'invalid_action',
  });
});

t.test('replay: a retry is running, answered again, new, or expired; never evaluated twice', async (t) => {
  const bounds = { replayBytes: 100, replayMaxAgeMs: 60_000 };
  const store = new ReplayStore(bounds.replayBytes, bounds.replayMaxAgeMs);
  const s = new Session('127.0.0.1');
  t.equal(replayOf(s, store, '1', 'fp', bounds), null, 'a new request');
  s.inflight.set('1', { fingerprint: 'fp', episode: 'e', abort: new AbortController() });
  t.equal(replayOf(s, store, '1', 'fp', bounds), 'running');
  t.throws(
    () => replayOf(s, store, '1', 'other', bounds),
    { code: 'invalid_message', message: /used for another step/ },
    'the same id with another action is not a retry, and not a new step either',
  );
  s.inflight.delete('1');
  store.remember(s, '1', 'fp', JSON.stringify({ answer: 1, pad: 'x'.repeat(40) }));
  t.same(replayOf(s, store, '1', 'fp', bounds), { answer: { answer: 1, pad: 'x'.repeat(40) } });
  // A second answer past the byte bound pushes the first out.
  store.remember(s, '2', 'fp2', JSON.stringify({ answer: 2, pad: 'x'.repeat(40) }));
  t.throws(() => replayOf(s, store, '1', 'fp', bounds), {
    code: 'replay_expired',
    message: /bounds: 100 bytes, 60000 ms/,
  });
  t.same(replayOf(s, store, '2', 'fp2', bounds), { answer: { answer: 2, pad: 'x'.repeat(40) } });
});

t.test(
  'backpressure: a full log, unreachable evaluation and too many pending steps are refused, each with its hint',
  async (t) => {
    const metrics = new Metrics();
    const log = { full: false, fullSince: null as { code: string } | null };
    let available = true;
    const evaluator = { available: () => available, poolSize: 2 };
    const bp = new Backpressure({ maxPendingSteps: 2, logProbeMs: 700 }, { log, evaluator, metrics });
    const refusal = (): ProtocolError => {
      try {
        bp.admit();
      } catch (e) {
        return e as ProtocolError;
      }
      throw new Error('admitted');
    };
    bp.admit();
    t.equal(bp.begin(), 0, 'the first step is at the head of the queue');
    t.equal(bp.begin(), 1);
    t.equal(bp.pendingSteps, 2);
    t.match(await metrics.registry.getSingleMetricAsString('anvil_queue_depth'), /anvil_queue_depth 2/);
    const busy = refusal();
    t.equal(busy.code, 'busy');
    // One step past the limit, 2,000 ms per step on average, two workers: 1,000 ms, and 100 more.
    t.equal(busy.retryAfterMs, 1100);
    bp.took(12_000);
    t.equal(
      refusal().retryAfterMs,
      Math.ceil((0.9 * 2000 + 0.1 * 12_000) / 2) + 100,
      'the hint follows the steps measured',
    );
    bp.end();
    bp.admit();
    available = false;
    t.match(refusal(), { code: 'busy', retryAfterMs: 1000, message: /unreachable/ });
    log.full = true;
    log.fullSince = { code: 'ENOSPC' };
    t.match(
      refusal(),
      { code: 'storage_full', retryAfterMs: 700, message: /ENOSPC/ },
      'a full disk first: it says why',
    );
    t.match(await metrics.registry.getSingleMetricAsString('anvil_busy_total'), /anvil_busy_total 3/);
    t.match(await metrics.registry.getSingleMetricAsString('anvil_log_refused_total'), /anvil_log_refused_total 1/);
    bp.end();
    t.equal(bp.pendingSteps, 0);
    t.match(await metrics.registry.getSingleMetricAsString('anvil_queue_depth'), /anvil_queue_depth 0/);
  },
);

t.test('deferred frames: a connection sending faster than frames are decoded is paused, then resumed', async (t) => {
  const heavy = new OnePerTurn();
  const frames = new DeferredFrames(heavy, 2 * 1024 * 1024);
  const events: string[] = [];
  const ws = {
    isPaused: false,
    pause: () => ((ws.isPaused = true), events.push('pause')),
    resume: () => ((ws.isPaused = false), events.push('resume')),
  };
  const conn = { ws, deferred: 0, deferredBytes: 0 } as unknown as Conn;
  const mib = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < 4; i++) frames.run(conn, mib, () => events.push(`frame ${i}`));
  t.same(events, ['pause', 'pause'], 'past two frames waiting, reading stops');
  await new Promise((r) => setTimeout(r, 50));
  t.same(events.slice(2), ['frame 0', 'frame 1', 'frame 2', 'resume', 'frame 3'], 'in order; resumed once drained');
  t.equal(conn.deferredBytes, 0);
});

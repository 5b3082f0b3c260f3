import t from 'tap';
import { DEFAULT_REWARD, rewardConfig } from '../rewards/config.js';
import { computeReward, solScore, type RewardInput } from '../rewards/reward.js';

const ok: RewardInput = {
  outcome: 'ok',
  correct: true,
  speedup: 2,
  profileShare: 0.8,
  candidateMs: 1,
  referenceMs: 2,
  solMs: 0.5,
};

t.test('the default is the Dr. Kernel recipe with the profile term', async (t) => {
  const r = computeReward(ok, rewardConfig());
  t.same(r.components, { correct: 0.5, speed: 1, profile: 0.4 });
  t.equal(r.total, 1.9);
  t.equal(r.mask, false);
  t.equal(computeReward({ ...ok, speedup: 10 }, rewardConfig()).components.speed, 1.5, 'speedup clipped at U = 3');
});

t.test('failures, hacks and infrastructure errors', async (t) => {
  t.same(computeReward({ ...ok, outcome: 'wrong_result', correct: false }, rewardConfig()), {
    total: 0,
    components: { failure: 0 },
    mask: false,
  });
  t.same(computeReward({ ...ok, outcome: 'hack_detected' }, rewardConfig({ hackReward: -1 })).total, -1);
  t.same(computeReward({ ...ok, outcome: 'compile_error' }, rewardConfig({ failureReward: -0.1 })).total, -0.1);
  t.same(computeReward({ ...ok, outcome: 'env_error' }, rewardConfig()), { total: 0, components: {}, mask: true });
});

t.test('log speedup, speed of light and Kevin', async (t) => {
  t.equal(computeReward(ok, rewardConfig({ formula: 'log_speedup' })).components.speed, 0.5 * Math.log(2));
  t.equal(
    computeReward({ ...ok, speedup: 0.5 }, rewardConfig({ formula: 'log_speedup' })).components.speed,
    0.5 * Math.log(0.5),
  );
  t.equal(solScore(ok), 1 / (1 + 0.5 / 1.5));
  t.equal(solScore({ ...ok, candidateMs: 0.5 }), 1, 'at the speed of light');
  t.equal(solScore({ ...ok, candidateMs: 2 }), 0.5, 'at the reference');
  t.same(computeReward(ok, rewardConfig({ formula: 'kevin' })).components, { correct: 0.3, speed: 2 });
});

t.test('configurations are validated', async (t) => {
  t.throws(() => rewardConfig({ speedCap: -1 }));
  t.throws(() => rewardConfig({ formula: 'best' as never }));
  t.same(rewardConfig(undefined, {}), DEFAULT_REWARD);
});

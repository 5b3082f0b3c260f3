/** TRLOO against hand-computed cases. */
import t from 'tap';
import { keepFlag, trloo, type TurnInput } from '../rewards/trloo.js';

const turn = (episode: string, turn: number, reward: number, mask = false, group = 'g'): TurnInput => ({
  group,
  episode,
  turn,
  reward,
  mask,
});

t.test('returns with γ = 1 and γ = 0.5', async (t) => {
  const turns = [turn('a', 0, 1), turn('a', 1, 2), turn('a', 2, 3)];
  t.same(
    trloo(turns, 1).map((v) => v.return),
    [6, 5, 3],
  );
  t.same(
    trloo(turns, 0.5).map((v) => v.return),
    [1 + 0.5 * (2 + 0.5 * 3), 2 + 0.5 * 3, 3],
  );
  t.same(
    trloo([turns[2]!, turns[0]!, turns[1]!], 1).map((v) => v.return),
    [3, 6, 5],
    'input order does not matter',
  );
});

t.test('leave-one-out over the group at each turn, with episodes of different lengths', async (t) => {
  // a: r = 1, 2   → G = 3, 2
  // b: r = 0      → G = 0
  // c: r = 4, 0   → G = 4, 0
  const turns = [turn('a', 0, 1), turn('a', 1, 2), turn('b', 0, 0), turn('c', 0, 4), turn('c', 1, 0)];
  const v = trloo(turns, 1);
  // t = 0: S = {a, b, c}, G = 3, 0, 4
  t.equal(v[0]!.advantage, 3 - (0 + 4) / 2);
  t.equal(v[2]!.advantage, 0 - (3 + 4) / 2);
  t.equal(v[3]!.advantage, 4 - (3 + 0) / 2);
  // t = 1: S = {a, c}, G = 2, 0
  t.equal(v[1]!.advantage, 2 - 0);
  t.equal(v[4]!.advantage, 0 - 2);
});

t.test('masked turns take part in neither gradient nor baseline', async (t) => {
  const turns = [turn('a', 0, 1), turn('b', 0, 5, true), turn('c', 0, 3), turn('b', 0, 2)];
  const v = trloo(turns, 1);
  t.same(v[1], { return: null, advantage: null });
  // S(0) = {a, c, b (its unmasked retry)}: G = 1, 3, 2
  t.equal(v[0]!.advantage, 1 - (3 + 2) / 2);
  t.equal(v[3]!.advantage, 2 - (1 + 3) / 2);
});

t.test('a group of one: the advantage is the return; groups do not mix', async (t) => {
  const v = trloo(
    [
      turn('a', 0, 2, false, 'g1'),
      turn('a', 1, 1, false, 'g1'),
      turn('z', 0, 7, false, 'g2'),
      turn('y', 0, 1, false, 'g2'),
    ],
    1,
  );
  t.same(v.slice(0, 2), [
    { return: 3, advantage: 3 },
    { return: 1, advantage: 1 },
  ]);
  t.equal(v[2]!.advantage, 7 - 1);
  t.throws(() => trloo([], 1.5));
});

t.test('profiling-based rejection sampling', async (t) => {
  const base = { episode: 'e', turn: 0, mask: false, correct: true };
  t.equal(keepFlag({ ...base, profileShare: 0.25 }, 0.3, 0.1), false, 'below τ: never');
  t.equal(keepFlag({ ...base, profileShare: 0.45 }, 0.3, 0.1), true, 'at τ + f or above: always');
  t.equal(
    keepFlag({ ...base, correct: false, profileShare: 0 }, 0.3, 0.1),
    true,
    'incorrect turns are not subject to it',
  );
  t.equal(keepFlag({ ...base, mask: true, profileShare: 1 }, 0.3, 0.1), false);
  let kept = 0;
  for (let i = 0; i < 2000; i++) kept += keepFlag({ ...base, episode: `e${i}`, profileShare: 0.35 }, 0.3, 0.1) ? 1 : 0;
  t.ok(kept > 850 && kept < 1150, `about half kept at p = 0.5: ${kept}`);
  t.equal(
    keepFlag({ ...base, profileShare: 0.35 }, 0.3, 0.1),
    keepFlag({ ...base, profileShare: 0.35 }, 0.3, 0.1),
    'deterministic',
  );
});

/** Per-turn returns and turn-level leave-one-out advantages (TRLOO, DESIGN §9),
 * and profiling-based rejection sampling. Pure functions over turn records. */
import { createHash } from 'node:crypto';

export interface TurnInput {
  group: string;
  episode: string;
  turn: number;
  reward: number;
  /** Masked turns (infrastructure failures, cancellations, rejected samples) take
   * part in neither the gradient nor any baseline. */
  mask: boolean;
}

export interface TurnValues {
  return: number | null;
  advantage: number | null;
}

/** G(i,t) = r(i,t) + γ·G(i,t+1) over an episode's unmasked turns in order;
 * A(i,t) = G(i,t) − mean of G(j,t) over the other episodes j of the group that
 * have an unmasked turn t; A = G when no other episode has one. Masked turns
 * get nulls. Returns values in the order of the input. */
export function trloo(turns: readonly TurnInput[], gamma: number): TurnValues[] {
  if (!(gamma >= 0 && gamma <= 1)) throw new RangeError(`gamma must be in [0, 1], got ${gamma}`);
  const out: TurnValues[] = turns.map(() => ({ return: null, advantage: null }));
  const byEpisode = new Map<string, number[]>();
  turns.forEach((t, i) => {
    if (t.mask) return;
    const list = byEpisode.get(t.episode) ?? [];
    list.push(i);
    byEpisode.set(t.episode, list);
  });
  for (const idx of byEpisode.values()) {
    idx.sort((a, b) => turns[a]!.turn - turns[b]!.turn);
    let g = 0;
    for (let k = idx.length - 1; k >= 0; k--) {
      g = turns[idx[k]!]!.reward + gamma * g;
      out[idx[k]!]!.return = g;
    }
  }
  // S(u, t): the unmasked turns t of group u.
  const cells = new Map<string, number[]>();
  turns.forEach((t, i) => {
    if (t.mask) return;
    const key = `${t.group}\u0000${t.turn}`;
    const list = cells.get(key) ?? [];
    list.push(i);
    cells.set(key, list);
  });
  for (const members of cells.values()) {
    const n = members.length;
    const sum = members.reduce((a, i) => a + out[i]!.return!, 0);
    for (const i of members) {
      const g = out[i]!.return!;
      out[i]!.advantage = n > 1 ? g - (sum - g) / (n - 1) : g;
    }
  }
  return out;
}

/** Profiling-based rejection sampling: a correct turn is kept with probability
 * clip((share − τ)/f, 0, 1); other unmasked turns are kept, masked ones never.
 * The draw is a hash of the episode and turn, so the same logs always give the
 * same flags. */
export function keepFlag(t: { episode: string; turn: number; mask: boolean; correct: boolean; profileShare: number | null }, tau: number, f: number): boolean {
  if (t.mask) return false;
  if (!t.correct) return true;
  const p = Math.min(1, Math.max(0, ((t.profileShare ?? 0) - tau) / f));
  const u = createHash('sha256').update(`${t.episode}\u0000${t.turn}`).digest().readUInt32LE(0) / 2 ** 32;
  return u < p;
}

/** Per-turn returns and turn-level leave-one-out advantages (TRLOO),
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

/** How the baseline of turn t treats the group's episodes that ended before t (a solved episode
 * stops): left out ('exclude': the baseline is the mean over those still going, which biases it
 * towards the survivors), or counted with a return of 0 ('zero': an ended episode earns nothing
 * more, so every episode of the group is in every turn's baseline up to the group's last turn). */
export type EndedBaseline = 'exclude' | 'zero';

export interface TurnValues {
  return: number | null;
  advantage: number | null;
}

/** G(i,t) = r(i,t) + γ·G(i,t+1) over an episode's unmasked turns in order;
 * A(i,t) = G(i,t) − mean of G(j,t) over the other episodes j of the group that
 * have an unmasked turn t; A = G when no other episode has one. Masked turns
 * get nulls. Returns values in the order of the input. */
export function trloo(turns: readonly TurnInput[], gamma: number, ended: EndedBaseline = 'exclude'): TurnValues[] {
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
  // 'zero': per group, the episodes and the turn each last played, for those absent from a later cell.
  const lastTurn = new Map<string, Map<string, number>>();
  if (ended === 'zero')
    for (const [ep, idx] of byEpisode) {
      const t = turns[idx[0]!]!;
      const group = lastTurn.get(t.group) ?? new Map<string, number>();
      group.set(ep, turns[idx[idx.length - 1]!]!.turn);
      lastTurn.set(t.group, group);
    }
  for (const members of cells.values()) {
    const first = turns[members[0]!]!;
    // Episodes of the group that ended before this turn: each a return of 0 in the baseline.
    let endedBefore = 0;
    if (ended === 'zero') for (const last of lastTurn.get(first.group)!.values()) if (last < first.turn) endedBefore++;
    const n = members.length + endedBefore;
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
export function keepFlag(
  t: { episode: string; turn: number; mask: boolean; correct: boolean; profileShare: number | null },
  tau: number,
  f: number,
): boolean {
  if (t.mask) return false;
  if (!t.correct) return true;
  const p = Math.min(1, Math.max(0, ((t.profileShare ?? 0) - tau) / f));
  const u = createHash('sha256').update(`${t.episode}\u0000${t.turn}`).digest().readUInt32LE(0) / 2 ** 32;
  return u < p;
}

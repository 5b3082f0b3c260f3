/** Episodes: one model working on one task over several turns. An explicit
 * lifecycle — ready ⇄ stepping, then done — with its legal transitions. */
import { createHash, randomUUID } from 'node:crypto';
import type { RewardConfig } from '../rewards/config.js';
import type { Task, TaskSet } from '../tasks/loader.js';
import { systemPrompt, taskPrompt } from '../tasks/prompt.js';
import type { ChatMessage, Observation, StepReason } from './protocol.js';

export type EpisodeState = 'ready' | 'stepping' | 'done';

/** A string that shares no memory with the one it came from. V8's slices point
 * into their parent: a 16 KiB slice of a 512 KiB reply would keep all 512 KiB. */
export function ownCopy(s: string): string {
  // Latin-1 text copied as Latin-1 stays one byte a character in V8; UTF-16 would make it two.
  return /[\u0100-\uffff]/.test(s)
    ? Buffer.from(s, 'utf16le').toString('utf16le')
    : Buffer.from(s, 'latin1').toString('latin1');
}

/** Characters of each turn's action an episode keeps in memory; only this many once the
 * server holds its `keptActionChars` over all episodes. */
export const TURN_ACTION_CHARS = 16 * 1024;
export const SHORT_ACTION_CHARS = 512;

/** One counted turn: an action the model took and what it earned. */
export interface Turn {
  turn: number;
  action: string;
  outcome: string;
  reward: number;
  components: Record<string, number>;
  speedup: number | null;
  feedback: string;
  codeHash: string;
}

export class Episode {
  readonly id = randomUUID();
  state: EpisodeState = 'ready';
  readonly turns: Turn[] = [];
  /** The messages shown to the model before its next action. */
  lastObservation: Observation;
  /** Set when the episode ends: why. */
  endReason: StepReason | null = null;
  /** Characters of the turns' actions it keeps. */
  keptChars = 0;

  constructor(
    readonly sessionId: string,
    readonly task: Task,
    readonly taskset: string,
    readonly seed: number,
    readonly groupId: string,
    readonly index: number,
    readonly maxTurns: number,
    readonly reward: RewardConfig,
    firstObservation: Observation,
  ) {
    this.lastObservation = firstObservation;
  }

  /** ready → stepping; the caller has checked that the episode is ready. */
  beginStep(): void {
    if (this.state !== 'ready') throw new Error(`episode ${this.id} cannot step from ${this.state}`);
    this.state = 'stepping';
  }

  /** stepping → ready, with nothing counted (cancelled, or an infrastructure failure). */
  abandonStep(): void {
    if (this.state === 'stepping') this.state = 'ready';
  }

  /** stepping → ready or done, with the turn counted. The action is kept (for `state`)
   * up to TURN_ACTION_CHARS: an episode's memory stays bounded; the log has the whole reply. */
  finishStep(turn: Omit<Turn, 'turn'>, ended: StepReason | null, shown: ChatMessage[], keep = TURN_ACTION_CHARS): Turn {
    const action =
      turn.action.length > keep
        ? `${ownCopy(turn.action.slice(0, keep))}\n[… truncated: the per-turn log holds the whole reply]`
        : turn.action;
    this.keptChars += action.length;
    const t = { ...turn, action, turn: this.turns.length };
    this.turns.push(t);
    this.lastObservation = { messages: shown };
    this.endReason = ended;
    this.state = ended ? 'done' : 'ready';
    return t;
  }

  get turnsLeft(): number {
    return this.maxTurns - this.turns.length;
  }
}

/** The first observation of a task: its system and task prompts. One object per
 * task, shared by every episode on it. */
const firstObservations = new WeakMap<Task, Observation>();
export function firstObservation(task: Task, cores: number): Observation {
  let o = firstObservations.get(task);
  if (!o) {
    o = Object.freeze({
      messages: [
        Object.freeze({ role: 'system' as const, content: systemPrompt(task) }),
        Object.freeze({ role: 'user' as const, content: taskPrompt(task, cores) }),
      ],
    });
    firstObservations.set(task, o);
  }
  return o;
}

/** Picks a task from a split, deterministically for a given seed. */
export function sampleTask(set: TaskSet, split: 'train' | 'eval', seed: number): Task {
  const ids = set.manifest.splits[split];
  if (ids.length === 0) throw new Error(`split ${split} of ${set.manifest.id} is empty`);
  const h = createHash('sha256').update(`${seed}`).digest().readUInt32LE(0);
  return set.tasks.get(ids[h % ids.length]!)!;
}

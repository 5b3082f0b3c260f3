/** Torch task sets (KernelBench format): Anvil's own folders (`task.json` +
 * `reference.py` + `solutions/*.py`), and a user's KernelBench checkout, whose
 * level folders become a task set with `--taskset kernelbench:PATH`. */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { AnvilError } from '../contracts/errors.js';
import type { TaskSet } from './loader.js';
import { parseJson } from './loader.js';
import { TorchTaskSchema, type Manifest, type TorchShapeDefs, type TorchTaskDef } from './schema.js';

export interface TorchTask extends TorchTaskDef {
  backend: 'torch';
  referenceSource: string;
  digest: string;
  dir: string;
  split: 'train' | 'eval';
}

const REQUIRED = [/^class Model\(/m, /^def get_inputs\(/m, /^def get_init_inputs\(/m];

function checkReference(source: string, where: string): void {
  for (const re of REQUIRED)
    if (!re.test(source))
      throw new AnvilError(
        'invalid_task',
        `${where}: not in KernelBench format (needs class Model, get_inputs and get_init_inputs)`,
      );
}

export function loadTorchSet(dir: string, manifest: Manifest): TaskSet {
  const split = new Map<string, 'train' | 'eval'>();
  for (const id of manifest.splits.train) split.set(id, 'train');
  for (const id of manifest.splits.eval) {
    if (split.has(id)) throw new AnvilError('invalid_task', `${dir}: ${id} is in both splits`);
    split.set(id, 'eval');
  }
  const tasks = new Map<string, TorchTask>();
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name, 'task.json');
    if (!entry.isDirectory() || !existsSync(file)) continue;
    const def = parseJson(TorchTaskSchema, file);
    if (def.id !== entry.name) throw new AnvilError('invalid_task', `${file}: id ${def.id} differs from its folder`);
    const refPath = path.join(dir, entry.name, 'reference.py');
    if (!existsSync(refPath)) throw new AnvilError('invalid_task', `${refPath} is missing`);
    const referenceSource = readFileSync(refPath, 'utf8');
    checkReference(referenceSource, refPath);
    for (const shapes of [def.shapes, def.cpuShapes]) {
      if (!shapes) continue;
      if (!shapes.correctness[0]!.visible)
        throw new AnvilError('invalid_task', `${file}: the first correctness shape must be visible`);
    }
    const s = split.get(def.id);
    if (!s) throw new AnvilError('invalid_task', `${dir}: task ${def.id} is in no split`);
    const digest = createHash('sha256').update(readFileSync(file)).update(referenceSource).digest('hex').slice(0, 16);
    tasks.set(def.id, { ...def, backend: 'torch', referenceSource, digest, dir: path.join(dir, entry.name), split: s });
  }
  for (const id of split.keys())
    if (!tasks.has(id)) throw new AnvilError('invalid_task', `${dir}: split names missing task ${id}`);
  return { manifest, tasks, dir };
}

/** The level folders of a KernelBench checkout (or one level folder itself). */
function levelFolders(root: string): string[] {
  const abs = path.resolve(root);
  if (!existsSync(abs) || !statSync(abs).isDirectory())
    throw new AnvilError('unknown_taskset', `no KernelBench checkout at ${abs}`);
  if (/^level\d+$/.test(path.basename(abs))) return [abs];
  for (const base of [path.join(abs, 'KernelBench'), abs]) {
    const levels = existsSync(base)
      ? readdirSync(base)
          .filter((d) => /^level[123]$/.test(d))
          .sort()
      : [];
    if (levels.length) return levels.map((d) => path.join(base, d));
  }
  throw new AnvilError('unknown_taskset', `${abs} holds no KernelBench level folders (level1, level2, level3)`);
}

/** Turns KernelBench's level folders into a task set: the file's own shapes, fp32
 * tolerances of KernelBench's newer harness, every fifth task in the eval split. */
export function loadKernelBench(root: string): TaskSet {
  const tasks = new Map<string, TorchTask>();
  const train: string[] = [];
  const evalIds: string[] = [];
  const own: TorchShapeDefs = { correctness: [{ set: {}, visible: true }], timing: [{}] };
  for (const folder of levelFolders(root)) {
    const level = path.basename(folder).replace('level', '');
    const files = readdirSync(folder)
      .filter((f) => f.endsWith('.py'))
      .sort((a, b) => parseInt(a, 10) - parseInt(b, 10) || a.localeCompare(b));
    for (const f of files) {
      const source = readFileSync(path.join(folder, f), 'utf8');
      if (!REQUIRED.every((re) => re.test(source))) continue;
      const id = `l${level}_${f
        .replace(/\.py$/, '')
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, '_')
        .replace(/_+$/, '')}`;
      const split = (train.length + evalIds.length) % 5 === 4 ? 'eval' : 'train';
      (split === 'eval' ? evalIds : train).push(id);
      tasks.set(id, {
        id,
        version: 1,
        title: f.replace(/\.py$/, '').replace(/^\d+_/, '').replace(/_/g, ' ').trim(),
        description: '',
        tags: [`kernelbench-level${level}`],
        tolerance: { atol: 1e-4, rtol: 1e-4 },
        shapes: own,
        minOwnShare: 0.5,
        backend: 'torch',
        referenceSource: source,
        digest: createHash('sha256').update(source).digest('hex').slice(0, 16),
        dir: folder,
        split,
      });
    }
  }
  if (tasks.size === 0) throw new AnvilError('unknown_taskset', `no KernelBench tasks under ${root}`);
  const manifest: Manifest = {
    id: `kernelbench:${path.resolve(root)}`,
    backend: 'torch',
    description: 'A KernelBench checkout',
    splits: { train, eval: evalIds },
    maxTurns: 4,
    reward: {},
  };
  return { manifest, tasks, dir: path.resolve(root) };
}

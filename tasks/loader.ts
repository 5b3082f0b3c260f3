/** Loads a C task set: a folder with `manifest.json` and one folder per task
 * holding `task.json`, `reference.c` and `solutions/`. Everything is checked
 * here, once, so the rest of the system handles only valid tasks. */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { AnvilError } from '../contracts/errors.js';
import { evaluate } from './expr.js';
import { TASKS_DIR } from './paths.js';
import { loadKernelBench, loadTorchSet, type TorchTask } from './torch-loader.js';
import { ManifestSchema, TaskSchema, type Manifest, type ShapeParams, type TaskArg, type TaskDef } from './schema.js';

export interface CTask extends TaskDef {
  backend: 'c';
  /** The C prototype every candidate implements. */
  signature: string;
  referenceSource: string;
  /** Hash of everything that defines the task; results record it. */
  digest: string;
  dir: string;
  split: 'train' | 'eval';
}

/** A task of either backend; `backend` tells which. */
export type Task = CTask | TorchTask;

export interface TaskSet<T extends Task = Task> {
  manifest: Manifest;
  tasks: Map<string, T>;
  dir: string;
}

export function cType(arg: TaskArg): string {
  switch (arg.kind) {
    case 'in':
      return `const float *${arg.name}`;
    case 'out':
      return `float *${arg.name}`;
    case 'i32':
      return `int ${arg.name}`;
    case 'f32':
      return `float ${arg.name}`;
  }
}

export function signatureOf(args: TaskArg[]): string {
  return `void solve(${args.map(cType).join(', ')})`;
}

/** The judge's view of one shape: per argument, an element count or a value. */
export function argValues(task: TaskDef, params: ShapeParams): number[] {
  return task.args.map((a) => {
    if (a.kind === 'in' || a.kind === 'out') return evaluate(a.size, params);
    if (a.kind === 'i32') return evaluate(a.value, params);
    return 0;
  });
}

function validate(task: TaskDef, where: string): void {
  const bad = (msg: string): never => {
    throw new AnvilError('invalid_task', `${where}: ${msg}`);
  };
  const names = new Set(task.args.map((a) => a.name));
  if (names.size !== task.args.length) bad('argument names repeat');
  if (!task.args.some((a) => a.kind === 'out')) bad('no output argument');
  const shapes = [...task.correctness.map((c) => c.params), ...task.timing];
  for (const p of shapes) {
    for (const name of task.params) if (!(name in p)) bad(`a shape lacks parameter ${name}`);
    for (const [i, v] of argValues(task, p).entries()) {
      const a = task.args[i]!;
      if ((a.kind === 'in' || a.kind === 'out') && !(Number.isInteger(v) && v > 0 && v < 2 ** 28))
        bad(`size of ${a.name} is ${v} for ${JSON.stringify(p)}`);
    }
    evaluate(task.flops, p);
    evaluate(task.bytes, p);
  }
  if (!task.correctness[0]!.visible) bad('the first correctness shape must be visible');
  if (task.correctness.every((c) => c.visible)) bad('every correctness shape is visible; hide at least one');
}

export function loadTaskSet(idOrPath: string): TaskSet {
  if (idOrPath.startsWith('kernelbench:')) return loadKernelBench(idOrPath.slice('kernelbench:'.length));
  const dir = existsSync(path.join(TASKS_DIR, idOrPath, 'manifest.json'))
    ? path.join(TASKS_DIR, idOrPath)
    : path.resolve(idOrPath);
  const manifestPath = path.join(dir, 'manifest.json');
  if (!existsSync(manifestPath))
    throw new AnvilError('unknown_taskset', `no task set "${idOrPath}" (no ${manifestPath})`);
  const manifest = parseJson(ManifestSchema, manifestPath);
  if (manifest.backend === 'torch') return loadTorchSet(dir, manifest);
  const tasks = new Map<string, Task>();
  const split = new Map<string, 'train' | 'eval'>();
  for (const id of manifest.splits.train) split.set(id, 'train');
  for (const id of manifest.splits.eval) {
    if (split.has(id)) throw new AnvilError('invalid_task', `${manifestPath}: ${id} is in both splits`);
    split.set(id, 'eval');
  }
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const taskDir = path.join(dir, entry.name);
    const file = path.join(taskDir, 'task.json');
    if (!existsSync(file)) continue;
    const def = parseJson(TaskSchema, file);
    if (def.id !== entry.name) throw new AnvilError('invalid_task', `${file}: id ${def.id} differs from its folder`);
    validate(def, file);
    const referenceSource = readFileSync(path.join(taskDir, 'reference.c'), 'utf8');
    const digest = createHash('sha256').update(readFileSync(file)).update(referenceSource).digest('hex').slice(0, 16);
    const s = split.get(def.id);
    if (!s) throw new AnvilError('invalid_task', `${manifestPath}: task ${def.id} is in no split`);
    tasks.set(def.id, {
      ...def,
      backend: 'c',
      signature: signatureOf(def.args),
      referenceSource,
      digest,
      dir: taskDir,
      split: s,
    });
  }
  for (const id of split.keys())
    if (!tasks.has(id)) throw new AnvilError('invalid_task', `${manifestPath}: split names missing task ${id}`);
  return { manifest, tasks, dir };
}

export function parseJson<T>(
  schema: {
    safeParse(
      v: unknown,
    ): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } };
  },
  file: string,
): T {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new AnvilError('invalid_task', `${file}: ${(e as Error).message}`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new AnvilError('invalid_task', `${file}: ${issue.path.join('.')}: ${issue.message}`);
  }
  return r.data;
}

export function getTask<T extends Task>(set: TaskSet<T>, id: string): T {
  const t = set.tasks.get(id);
  if (!t)
    throw new AnvilError(
      'unknown_task',
      `no task "${id}" in task set ${set.manifest.id}; known: ${[...set.tasks.keys()].join(', ')}`,
    );
  return t;
}

/** Narrows a task to the C backend, for code that only C tasks reach. */
export function cTask(task: Task): CTask {
  if (task.backend !== 'c')
    throw new AnvilError('invalid_argument', `task ${task.id} is a ${task.backend} task; this evaluator runs C tasks`);
  return task;
}

/** Paths of the committed solutions of a task: `solutions/*.c` (or `*.py`). */
export function solutionFiles(task: Task): string[] {
  const d = path.join(task.dir, 'solutions');
  if (!existsSync(d)) return [];
  const ext = task.backend === 'c' ? '.c' : '.py';
  return readdirSync(d)
    .filter((f) => f.endsWith(ext))
    .sort()
    .map((f) => path.join(d, f));
}

/** The task file format of C task sets, validated once when a set loads. */
import { z } from 'zod';

export const LIB_OPS = [
  'lib_sgemm',
  'lib_sgemm_nt',
  'lib_add_bias',
  'lib_relu',
  'lib_scale',
  'lib_softmax_rows',
] as const;

const Ident = z.string().regex(/^[a-z_][a-z0-9_]*$/i, 'a C identifier');

/** How an input is drawn: uniform on [a, b), or normal with mean a and deviation b. */
const Gen = z.object({ dist: z.enum(['uniform', 'normal']), a: z.number(), b: z.number() }).strict();

export const ArgSchema = z.discriminatedUnion('kind', [
  z.object({ name: Ident, kind: z.literal('in'), size: z.string(), gen: Gen }).strict(),
  z.object({ name: Ident, kind: z.literal('out'), size: z.string() }).strict(),
  z.object({ name: Ident, kind: z.literal('i32'), value: z.string() }).strict(),
  z.object({ name: Ident, kind: z.literal('f32'), gen: Gen }).strict(),
]);
export type TaskArg = z.infer<typeof ArgSchema>;

const Tolerance = z.object({ atol: z.number().nonnegative(), rtol: z.number().nonnegative() }).strict();
const Params = z.record(z.string(), z.number().int().positive());
export type ShapeParams = z.infer<typeof Params>;

export const TaskSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9_]+$/),
    version: z.number().int().positive(),
    title: z.string().min(1),
    /** What to compute, for the prompt. */
    description: z.string().min(1),
    tags: z.array(z.string()).default([]),
    params: z.array(Ident).min(1),
    args: z.array(ArgSchema).min(2).max(12),
    /** Correctness shapes; `visible` ones appear in the prompt, the rest never do. */
    correctness: z.array(z.object({ params: Params, visible: z.boolean().default(false) }).strict()).min(2),
    /** Timing shapes: never shown. */
    timing: z.array(Params).min(1).max(4),
    tolerance: Tolerance,
    /** The tolerance of outputs computed while timing, where the timing shapes
     * reduce over many more elements than the correctness shapes and an honest
     * kernel's rounding error grows with them (calibrated by bench/c-tolerance.ts);
     * `tolerance` when absent. */
    timingTolerance: Tolerance.optional(),
    flops: z.string(),
    bytes: z.string(),
    libOps: z.array(z.enum(LIB_OPS)).default([]),
    /** Below this share of its own time, a candidate is handing its work to the library. */
    minOwnShare: z.number().min(0).max(1).default(0.2),
  })
  .strict();
export type TaskDef = z.infer<typeof TaskSchema>;

export const ManifestSchema = z
  .object({
    id: z.string().min(1),
    backend: z.enum(['c', 'torch']).default('c'),
    description: z.string().default(''),
    splits: z.object({ train: z.array(z.string()), eval: z.array(z.string()) }).strict(),
    maxTurns: z.number().int().positive().default(4),
    /** An episode ends as solved (terminated) once a turn reaches this speedup. */
    solvedSpeedup: z.number().positive().optional(),
    /** Reward configuration, validated by rewards/ when the server loads the set. */
    reward: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();
export type Manifest = z.infer<typeof ManifestSchema>;

/** A shape of a torch task: values for the module-level names of its reference file. */
const ShapeSet = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.number().int().positive());

const TorchShapes = z
  .object({
    /** Correctness shapes; the first is the reference file's own (`set: {}`) and visible. */
    correctness: z.array(z.object({ set: ShapeSet, visible: z.boolean().default(false) }).strict()).min(1),
    /** Timing shapes: never shown (`{}` is the reference file's own). */
    timing: z.array(ShapeSet).min(1).max(4),
  })
  .strict();
export type TorchShapeDefs = z.infer<typeof TorchShapes>;

/** task.json of a torch task; the program itself is reference.py (KernelBench format). */
export const TorchTaskSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9_]+$/),
    version: z.number().int().positive(),
    title: z.string().min(1),
    description: z.string().default(''),
    tags: z.array(z.string()).default([]),
    tolerance: z.object({ atol: z.number().nonnegative(), rtol: z.number().nonnegative() }).strict(),
    /** Shapes on a GPU, and smaller ones for CPU runs (CI); CPU runs fall back to `shapes`. */
    shapes: TorchShapes,
    cpuShapes: TorchShapes.optional(),
    /** FLOPs of one call, an arithmetic expression over the reference file's names. */
    flops: z.string().optional(),
    minOwnShare: z.number().min(0).max(1).default(0.5),
  })
  .strict();
export type TorchTaskDef = z.infer<typeof TorchTaskSchema>;

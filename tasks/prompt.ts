/** The words a model sees: the system prompt and a task's prompt. Built from
 * the task definition, so prompts and checks can never disagree. Hidden
 * shapes and timing shapes never appear here. */
import { ALLOWED_HEADERS } from '../contracts/c-headers.js';
import type { CTask, Task } from './loader.js';
import type { TorchTask } from './torch-loader.js';

const C_SYSTEM_PROMPT = [
  'You are an expert performance engineer writing C kernels for x86-64 CPUs.',
  'Each task asks for one C function, `solve`. Your code is compiled, checked for correctness against a reference on',
  'random inputs (including shapes you are not shown), then timed against the reference. Faster correct code earns more.',
  'Reply with the complete C source in one fenced code block (```c ... ```). You will get feedback and may improve it.',
].join('\n');

const TORCH_SYSTEM_PROMPT = [
  'You are an expert GPU kernel engineer writing Triton and CUDA kernels for NVIDIA GPUs.',
  'Each task gives a PyTorch program, `Model`; you write `ModelNew`, the same computation with your own kernels.',
  'Your code is checked for correctness against `Model` on random inputs (including shapes you are not shown), then',
  'timed against it. Faster correct code earns more. Reply with the complete Python module in one fenced code block',
  '(```python ... ```). You will get feedback and may improve it.',
].join('\n');

/** The system prompt for a task's backend. */
export function systemPrompt(task: Task): string {
  return task.backend === 'c' ? C_SYSTEM_PROMPT : TORCH_SYSTEM_PROMPT;
}

export function taskPrompt(task: Task, cores: number): string {
  return task.backend === 'c' ? cPrompt(task, cores) : torchPrompt(task);
}

function torchPrompt(task: TorchTask): string {
  return [
    `# Task: ${task.title} (\`${task.id}\`)`,
    '',
    ...(task.description ? [task.description.trim(), ''] : []),
    'The reference program:',
    '```python',
    task.referenceSource.trim(),
    '```',
    '',
    'Write `class ModelNew(nn.Module)` with the same constructor arguments and `forward` signature, computing the same outputs.',
    '',
    'Rules:',
    '- Launch your own kernels: Triton (`@triton.jit`) or CUDA/C++ through `torch.utils.cpp_extension.load_inline`. Framework compute',
    '  (torch.matmul, F.softmax, `@`, x.sum(), …) in `forward` is refused; allocating outputs (torch.empty…) and views are fine.',
    '- Imports: torch, torch.nn, torch.nn.functional, torch.utils.cpp_extension (load_inline), triton, triton.language, math.',
    '  No try/except, no threads, streams that outlive the call, files, `Model` itself, or changes to torch settings.',
    `- Outputs must have the reference's type (a plain torch.Tensor), shape and dtype (fp32 stays fp32; TF32 is off), within atol=${task.tolerance.atol}, rtol=${task.tolerance.rtol}.`,
    "- Inputs are read-only. Shapes other than the file's own are used too, for correctness and for timing.",
  ].join('\n');
}

function cPrompt(task: CTask, cores: number): string {
  const shown = task.correctness.filter((c) => c.visible).map((c) => fmt(c.params));
  const lines = [
    `# Task: ${task.title} (\`${task.id}\`)`,
    '',
    task.description.trim(),
    '',
    'Implement exactly this function:',
    '```c',
    `${task.signature};`,
    '```',
    '',
    'Rules:',
    `- C11, compiled with \`gcc -O3 -march=native -fopenmp\` for an x86-64 CPU with AVX2 and AVX-512; ${cores} cores.`,
    `- Allowed headers: ${ALLOWED_HEADERS.map((h) => `<${h}>`).join(' ')}.`,
    task.libOps.length
      ? `- You may call these library ops, declared in "anvil_lib.h": ${task.libOps.join(', ')}. Time spent in them is not your own work, and a kernel that leaves most of its work to them is rejected.`
      : '- No library ops are offered for this task: write the whole computation.',
    '- Only math, memory and OpenMP functions may be called: no inline assembly, threads of your own, system calls, files or sockets.',
    '- All arrays are float32, row-major, sizes in elements. Inputs are read-only; every output element must be written.',
    `- Outputs are compared with the reference within atol=${task.tolerance.atol}, rtol=${task.tolerance.rtol}${timingTolerance(task)}.`,
    `- Example shapes: ${shown.join('; ')}. Other shapes are used too, for correctness and for timing.`,
  ];
  return lines.join('\n');
}

/** The larger timing shapes' own tolerance, where a task has one. */
function timingTolerance(task: CTask): string {
  const t = task.timingTolerance;
  return t ? ` (at the larger timing shapes, atol=${t.atol}, rtol=${t.rtol})` : '';
}

function fmt(p: Record<string, number>): string {
  return Object.entries(p)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

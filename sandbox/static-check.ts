/** Static checks on a C candidate: first on its source, then on the symbols
 * its compiled object file references. The object-file check is the strong
 * one: whatever the source does with macros, a call to a function outside the
 * allowed list shows up as an undefined symbol. */
import type { Flag } from './result.js';

export const MAX_SOURCE_BYTES = 256 * 1024;

export const ALLOWED_HEADERS = [
  'assert.h', 'float.h', 'limits.h', 'math.h', 'omp.h', 'stdbool.h', 'stddef.h', 'stdint.h',
  'stdio.h', 'stdlib.h', 'string.h', 'immintrin.h', 'x86intrin.h',
] as const;

const MATH = [
  'sin', 'cos', 'tan', 'asin', 'acos', 'atan', 'atan2', 'sinh', 'cosh', 'tanh', 'exp', 'exp2', 'expm1', 'log',
  'log2', 'log10', 'log1p', 'sqrt', 'cbrt', 'pow', 'fabs', 'floor', 'ceil', 'round', 'lround', 'trunc', 'fmod',
  'fmin', 'fmax', 'fma', 'erf', 'erfc', 'hypot', 'ldexp', 'frexp', 'nearbyint', 'rint', 'lrint', 'copysign',
];
const LIBC = [
  'malloc', 'calloc', 'realloc', 'free', 'aligned_alloc', 'posix_memalign', 'memcpy', 'memmove', 'memset',
  'memcmp', 'abort', 'exit', 'abs', 'labs', 'qsort', 'printf', 'puts', 'putchar', 'fprintf', 'fputs', 'fputc',
  'fwrite', 'stdout', 'stderr', '__stack_chk_fail', '__assert_fail', '__printf_chk', '__fprintf_chk',
  '__memcpy_chk', '__memset_chk', '__memmove_chk',
];
/** Undefined symbols a candidate object may reference, besides the task's library ops. */
export const ALLOWED_SYMBOLS: ReadonlySet<string> = new Set([
  ...MATH.flatMap((f) => [f, `${f}f`, `__${f}_finite`, `__${f}f_finite`]),
  ...LIBC,
]);
const ALLOWED_PREFIXES = ['omp_', 'GOMP_', '_ZGV' /* libmvec vector math */];

/** Names a candidate may not define: they would replace the runner's own. */
const RESERVED_DEFINITIONS = /^(main|_start|anvil_\w*|lib_\w*|read|write|mmap|fstat|setvbuf|clock_gettime|exit|_exit)$/;

export interface StaticFinding {
  outcome: 'static_violation' | 'compile_error';
  message: string;
  flags: Flag[];
}

/** Source-level checks; returns the first finding, or null. */
export function checkSource(code: string): StaticFinding | null {
  if (Buffer.byteLength(code) > MAX_SOURCE_BYTES)
    return violation('code_too_large', `the code is ${Buffer.byteLength(code)} bytes; the limit is ${MAX_SOURCE_BYTES}`);
  const stripped = stripCommentsAndStrings(code);
  const asm = /\b(asm|__asm__|__asm)\b/.exec(stripped);
  if (asm) return violation('inline_assembly', `inline assembly (\`${asm[1]}\`) is not allowed`);
  for (const m of stripped.matchAll(/^[ \t]*#[ \t]*(include|include_next|import|embed)\b(.*)$/gm)) {
    const target = m[2]!.trim();
    const sys = /^<([\w./]+)>$/.exec(target);
    if (m[1] !== 'include' || !(sys && (ALLOWED_HEADERS as readonly string[]).includes(sys[1]!)) && target !== '"anvil_lib.h"')
      return violation('forbidden_include', `\`#${m[1]} ${target}\` is not allowed; allowed headers: ${ALLOWED_HEADERS.join(', ')}, "anvil_lib.h"`);
  }
  const ctor = /__attribute__\s*\(\(\s*(constructor|destructor)/.exec(stripped);
  if (ctor) return violation('constructor', `\`${ctor[1]}\` functions run outside the timed call and are not allowed`);
  if (!/\bsolve\s*\(/.test(stripped))
    return { outcome: 'compile_error', message: 'the code defines no function `solve`', flags: [] };
  return null;
}

/** Checks the preprocessed source (`gcc -E`) for inline assembly that macros
 * produced, looking only at lines that came from the candidate's own file. */
export function checkPreprocessed(preprocessed: string, fileName: string): StaticFinding | null {
  let own = false;
  for (const line of preprocessed.split('\n')) {
    const marker = /^# \d+ "([^"]*)"/.exec(line);
    if (marker) {
      own = marker[1] === fileName || marker[1]!.endsWith(`/${fileName}`);
      continue;
    }
    if (!own) continue;
    const asm = /\b(asm|__asm__|__asm)\b/.exec(stripCommentsAndStrings(line));
    if (asm) return violation('inline_assembly', `inline assembly (\`${asm[1]}\`, produced by a macro) is not allowed`);
  }
  return null;
}

/** Checks the `nm -P` listing of the candidate's object file. */
export function checkSymbols(nmOutput: string, libOps: readonly string[]): StaticFinding | null {
  const allowedLib = new Set(libOps);
  let definesSolve = false;
  for (const line of nmOutput.split('\n')) {
    const [name, type] = line.trim().split(/\s+/);
    if (!name || !type) continue;
    if (type === 'U' || type === 'w') {
      if (ALLOWED_SYMBOLS.has(name) || allowedLib.has(name) || ALLOWED_PREFIXES.some((p) => name.startsWith(p))) continue;
      const hint = name.startsWith('lib_') ? ' (this task does not offer it)' : '';
      return violation('forbidden_call', `the code calls \`${name}\`${hint}; candidates may call only math, memory and OpenMP functions and the task's library ops`);
    }
    if (/^[A-Z]$/.test(type) && type !== 'U') {
      if (name === 'solve' && type === 'T') definesSolve = true;
      else if (RESERVED_DEFINITIONS.test(name)) return violation('reserved_symbol', `the code defines \`${name}\`, a name the harness owns`);
    }
  }
  if (!definesSolve) return { outcome: 'compile_error', message: 'the code defines no global function `solve`', flags: [] };
  return null;
}

function violation(kind: string, message: string): StaticFinding {
  return { outcome: 'static_violation', message, flags: [{ kind, evidence: message }] };
}

/** Blanks comments and string/char literals so that checks see code only;
 * keeps include lines (whose targets are strings) as they are. */
function stripCommentsAndStrings(code: string): string {
  return code.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|^[ \t]*#[ \t]*include[^\n]*|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'/gm, (m) =>
    /^[ \t]*#/.test(m) ? m : m.startsWith('/') ? ' '.repeat(m.length).replace(/[^\n]/g, ' ') : '""',
  );
}

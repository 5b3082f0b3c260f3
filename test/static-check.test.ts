/** The static checks: the friendly source checks see what the compiler's first
 * phases see, the checks on what is built see the real object (compiled here
 * by gcc with the candidates' flags), and every check is linear in its input. */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readElf } from '../sandbox/elf.js';
import {
  checkDependencies,
  checkObject,
  checkPreprocessed,
  checkSource,
  checkSymbols,
  MAX_SOURCE_BYTES,
  parseDependencies,
  failClosed,
} from '../sandbox/static-check.js';
import { CANDIDATE_CFLAGS } from '../sandbox/toolchain.js';

const kind = (code: string) => checkSource(code)?.flags[0]?.kind;
const SOLVE = 'void solve(void) {}\n';

t.test('clean sources pass; comments and strings do not trip the checks', async (t) => {
  t.equal(
    checkSource(
      '#include <math.h>\n#include "anvil_lib.h"\n/* asm */\nvoid solve(void) { const char *s = "asm"; (void)s; }',
    ),
    null,
  );
  t.equal(
    checkSource(
      `/* #include <unistd.h>\n#line 3 "x.h" */\n// #line 9\n${SOLVE}char c = '#'; const char *s = "#line 1 \\"x\\"";\n`,
    ),
    null,
  );
  t.equal(
    checkSource(
      `__attribute__((aligned(64))) static float buf[16];\nstatic inline __attribute__((always_inline)) float f(float x) { return x; }\n${SOLVE}`,
    ),
    null,
  );
});

t.test('inline assembly, foreign headers and constructors are violations', async (t) => {
  t.equal(kind('void solve(void) { __asm__("nop"); }'), 'inline_assembly');
  t.equal(kind('#include <unistd.h>\nvoid solve(void) {}'), 'forbidden_include');
  t.equal(kind('#include "/etc/passwd"\nvoid solve(void) {}'), 'forbidden_include');
  t.equal(kind('#define F "x.h"\n#include F\nvoid solve(void) {}'), 'forbidden_include');
  t.equal(kind('__attribute__((constructor)) static void f(void) {}\nvoid solve(void) {}'), 'constructor');
});

t.test('other spellings of the same things are the same violations', async (t) => {
  // Line splices, digraphs and comments inside a directive are what the preprocessor sees through.
  t.equal(kind(`#\\\ninclude <unistd.h>\n${SOLVE}`), 'forbidden_include');
  t.equal(kind(`#inc\\\nlude <unistd.h>\n${SOLVE}`), 'forbidden_include');
  t.equal(kind(`%:include <unistd.h>\n${SOLVE}`), 'forbidden_include');
  t.equal(kind(`/* x */ # /* y */ include /* z\n */ <unistd.h>\n${SOLVE}`), 'forbidden_include');
  t.equal(kind(`#include_next <math.h>\n${SOLVE}`), 'forbidden_include');
  t.equal(kind(`__attribute__((__constructor__)) static void f(void) {}\n${SOLVE}`), 'constructor');
  t.equal(kind(`__attribute((destructor(101))) static void f(void) {}\n${SOLVE}`), 'constructor');
  t.equal(kind(`__attribute__ ((noinline, __constructor__ (200))) static void f(void) {}\n${SOLVE}`), 'constructor');
  for (const a of [
    'section(".init_array")',
    '__section__(".text.x")',
    'ifunc("r")',
    'alias("solve")',
    'weakref("x")',
    'used',
    'target_clones("avx2","default")',
  ])
    t.equal(kind(`static void g(void) __attribute__((${a}));\n${SOLVE}`), 'forbidden_attribute', a);
  // The standard attribute syntax, which gcc accepts in gnu11 with the same meanings.
  t.equal(kind(`[[gnu::constructor]] static void f(void) {}\n${SOLVE}`), 'constructor');
  t.equal(kind(`<:<:__gnu__::__destructor__:>:> static void f(void) {}\n${SOLVE}`), 'constructor');
  t.equal(kind(`[[gnu::section(".text.s\\n\\tnop")]] void p(void) {}\n${SOLVE}`), 'forbidden_attribute');
  t.equal(kind(`[[ gnu :: noinline, gnu::used ]] static void g(void) {}\n${SOLVE}`), 'forbidden_attribute');
  t.equal(
    kind(`[[maybe_unused, gnu::aligned(64)]] static float b[16];\nvoid solve(int *a) { a[a[0]] = 1; }\n`),
    undefined,
  );
  t.equal(kind(`void solve(void) { __as\\\nm__("nop"); }`), 'inline_assembly');
  t.equal(kind(`const char *s = R"x(" /* ")x";\n#include <unistd.h>\n${SOLVE}`), 'raw_string');
});

t.test('line directives and line markers are refused in every spelling', async (t) => {
  for (const d of [
    '#line 1 "sysdeps.h"',
    '#line 7',
    '# 1 "/usr/include/stdio.h" 1 3 4',
    '%:line 1 "x.h"',
    '#\\\nline 1',
    '  #  42 "a.h"',
  ])
    t.equal(kind(`${d}\n${SOLVE}`), 'line_directive', d);
});

t.test('missing solve and oversized code are reported', async (t) => {
  t.equal(checkSource('int main(void) { return 0; }')?.outcome, 'compile_error');
  t.equal(kind(`void solve(void) {}\n/*${'x'.repeat(MAX_SOURCE_BYTES)}*/`), 'code_too_large');
});

t.test('the source checks are linear: crafted inputs of the size limit come back with the right answer', async (t) => {
  const fill = (unit: string, head = '') =>
    head + unit.repeat(Math.floor((MAX_SOURCE_BYTES - head.length - 8) / unit.length));
  // Everything after an unclosed comment is comment: no solve is seen.
  t.equal(checkSource(fill('x', '/*'))?.outcome, 'compile_error');
  t.equal(checkSource(fill('x', `${SOLVE}/*`)), null);
  t.equal(checkSource(fill('/*'))?.outcome, 'compile_error');
  t.equal(checkSource(fill('"<kernel>"', SOLVE)), null);
  t.equal(checkSource(fill('"<kernel>"\n', SOLVE)), null);
  t.equal(checkSource(fill('"\\', SOLVE)), null);
  t.equal(checkSource(fill("'", SOLVE)), null);
  t.equal(checkSource(fill('\\\n', SOLVE)), null);
  t.equal(checkSource(fill('__attribute__((', SOLVE)), null);
  t.equal(kind(fill('__attribute__((constructor))', SOLVE)), 'constructor');
  t.equal(kind(fill('#include <math.h>\n', `${SOLVE}#include <unistd.h>\n`)), 'forbidden_include');
  t.equal(kind(fill('R"', SOLVE)), 'raw_string');
  t.equal(checkPreprocessed(fill('# 1 "candidate.c"\n'), 'candidate.c'), null);
  t.equal(checkPreprocessed(`# 1 "candidate.c"\n${'x'.repeat(8 * 1024 * 1024)}\n`, 'candidate.c'), null);
});

t.test('the preprocessed check finds macro-made assembly and forged line markers in the candidate only', async (t) => {
  const pre =
    '# 0 "candidate.c"\n# 0 "<built-in>"\n# 1 "/usr/include/x.h" 1 3 4\nstatic inline void f(void) { __asm__("pause"); }\n# 2 "candidate.c" 2\nvoid solve(void) {}\n';
  t.equal(checkPreprocessed(pre, 'candidate.c'), null);
  t.equal(
    checkPreprocessed(`${pre}# 7 "candidate.c"\nvoid g(void) { __asm__ volatile("nop"); }\n`, 'candidate.c')?.flags[0]
      ?.kind,
    'inline_assembly',
  );
  t.equal(
    checkPreprocessed(`${pre}void h(void) __attribute__((section(".init_array")));\n`, 'candidate.c')?.flags[0]?.kind,
    'forbidden_attribute',
  );
  t.equal(
    checkPreprocessed(
      `${pre}# 1 "/usr/include/x86_64-linux-gnu/bits/sysdeps.h"\nvoid g(void) { __asm__("syscall"); }\n`,
      'candidate.c',
    )?.flags[0]?.kind,
    'line_directive',
  );
  // A macro that makes a `#` is printed with a space before it: not a marker.
  t.equal(checkPreprocessed(`${pre} # 1 "x.h"\nint x;\n`, 'candidate.c'), null);
});

t.test('dependencies: every file read must be allowed', async (t) => {
  const deps = 'candidate.o: /job/candidate.c /anvil/task/task.h \\\n /usr/include/math.h /usr/include/odd\\ name.h\n';
  t.same(parseDependencies(deps), [
    '/job/candidate.c',
    '/anvil/task/task.h',
    '/usr/include/math.h',
    '/usr/include/odd name.h',
  ]);
  const allowed = new Set(['/anvil/task/task.h', '/usr/include/math.h', '/usr/include/odd name.h']);
  t.equal(checkDependencies(parseDependencies(deps), allowed, '/job/candidate.c'), null);
  t.match(
    checkDependencies(['/job/candidate.c', '/usr/include/unistd.h'], allowed, '/job/candidate.c')?.message,
    /unistd\.h/,
  );
  t.equal(
    checkDependencies(['/job/candidate.c', '/anvil/task/reference.c'], allowed, '/job/candidate.c')?.flags[0]?.kind,
    'forbidden_include',
  );
});

/** Compiles C with the candidates' flags and runs the object check on the result. */
function objectFinding(code: string): string | null {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'anvil-objcheck-'));
  writeFileSync(path.join(dir, 'c.c'), code);
  execFileSync('gcc', [...CANDIDATE_CFLAGS, '-w', '-c', 'c.c', '-o', 'c.o'], { cwd: dir });
  const dis = execFileSync('objdump', ['-d', '-w', '--no-show-raw-insn', 'c.o'], {
    cwd: dir,
    maxBuffer: 64 << 20,
  }).toString();
  return checkObject(readElf(readFileSync(path.join(dir, 'c.o'))), dis)?.flags[0]?.kind ?? null;
}

t.test('the object check sees what the compiler built, however it was spelled', async (t) => {
  const body = 'void solve(float *x, int n) { for (int i = 0; i < n; i++) x[i] *= 2; }\n';
  loaderCodeAndSyscalls(t, body);
  injectedSections(t, body);
});

/** Clean code passes; code the loader would run and system-call instructions do not. */
function loaderCodeAndSyscalls(t: Test, body: string): void {
  t.equal(objectFinding(body), null);
  t.equal(
    objectFinding(
      readFileSync(
        path.join(import.meta.dirname, '..', '..', 'tasks', 'builtin-c', 'sgemm', 'solutions', 'openmp_avx512.c'),
        'utf8',
      ).replace(/^/, 'void solve(const float *A, const float *B, float *C, int M, int N, int K);\n'),
    ),
    null,
  );
  t.equal(
    objectFinding(
      `#define C(x) __attribute__((x))\n#define K __constructor__\nvolatile int v;\nC(K) static void f(void) { v = 1; }\n${body}`,
    ),
    'init_section',
  );
  t.equal(
    objectFinding(
      `static void f(void) {}\n__attribute__((section(".init_array"), used)) static void (*p)(void) = f;\n${body}`,
    ),
    'init_section',
  );
  t.equal(
    objectFinding(
      `static void f(void) {}\n__attribute__((section(".preinit_array"), used)) static void (*p)(void) = f;\n${body}`,
    ),
    'init_section',
  );
  t.equal(
    objectFinding(
      `static void f(void) {}\n__attribute__((section(".data.x\\n\\t.section .ctors,\\"aw\\"\\n\\t.quad f\\n\\t.previous #"), used)) static int q;\n${body}`,
    ),
    'init_section',
  );
  t.equal(objectFinding(`${body}void g(void) { __asm__ volatile("syscall"); }\n`), 'syscall_instruction');
  t.equal(objectFinding(`${body}void g(void) { __asm__ volatile("int $0x80"); }\n`), 'syscall_instruction');
  t.equal(objectFinding(`${body}void g(void) { __asm__ volatile("sysenter"); }\n`), 'syscall_instruction');
}

/** Sections made by assembler lines smuggled into a section name (code, executable sections and stacks), and an IFUNC. */
function injectedSections(t: Test, body: string): void {
  // Section-name injection: the newlines in the name become assembler lines.
  t.equal(
    objectFinding(
      `__attribute__((section(".text.s\\n\\tmov $60, %eax\\n\\tsyscall\\n\\t.section .text.t #"))) void p(void) {}\n${body}`,
    ),
    'syscall_instruction',
  );
  t.equal(
    objectFinding(`__attribute__((section(".mycode,\\"ax\\",@progbits #"))) void p(void) {}\n${body}`),
    'executable_section',
  );
  t.equal(
    objectFinding(`__attribute__((section(".data.w,\\"awx\\",@progbits #"))) void p(void) {}\n${body}`),
    'executable_section',
  );
  t.equal(
    objectFinding(
      `__attribute__((section(".data.s\\n\\t.section .note.GNU-stack,\\"x\\",@progbits\\n\\t.previous #"))) int v = 1;\n${body}`,
    ),
    'executable_stack',
  );
  t.equal(
    objectFinding(
      `static void add(float *x, int n) { (void)x; (void)n; }\nstatic void *r(void) { return (void *)add; }\nvoid solve(float *x, int n) __attribute__((ifunc("r")));\n`,
    ),
    'ifunc',
  );
}

t.test('the symbol check allows math, memory, OpenMP and offered library ops only', async (t) => {
  const ok =
    'solve T 0 10\nexpf U\nmemcpy U\nGOMP_parallel U\nomp_get_thread_num U\n_ZGVeN16v_expf U\nlib_relu U\nhelper t 0 4\n_GLOBAL_OFFSET_TABLE_ U\n';
  t.equal(checkSymbols(ok, ['lib_relu']), null);
  t.match(checkSymbols(ok, [])?.message, /lib_relu.*does not offer/);
  t.equal(checkSymbols('solve T 0 1\npthread_create U\n', [])?.flags[0]?.kind, 'forbidden_call');
  t.equal(
    checkSymbols('solve T 0 1\nclock_gettime T 0 1\n', [], new Set(['clock_gettime']))?.flags[0]?.kind,
    'reserved_symbol',
  );
  t.equal(
    checkSymbols('solve T 0 1\nwrite T 0 1\nsyscall U\n', [], new Set(['write']))?.flags[0]?.kind,
    'reserved_symbol',
  );
  t.equal(checkSymbols('solve T 0 1\n__libc_start_main T 0 1\n', [])?.flags[0]?.kind, 'reserved_symbol');
  t.equal(checkSymbols('solve i 0 1\n', [])?.flags[0]?.kind, 'ifunc');
  t.equal(checkSymbols('solve T 0 1\ntable D 0 1\nhelper T 0 1\n', [], new Set(['write'])), null);
  t.equal(checkSymbols('solver T 0 1\n', [])?.outcome, 'compile_error');
});

t.test(
  'a check that throws on what the candidate wrote refuses it, never lets it through or masks the turn',
  async (t) => {
    const passed = failClosed('source', () => checkSource('void solve(float *x, int n) {}\n'));
    t.equal(passed, null, 'a check that returns is returned as it is');
    const refused = failClosed('source', () => checkSource(undefined as unknown as string));
    t.equal(refused?.outcome, 'static_violation');
    t.same(
      refused?.flags.map((f) => f.kind),
      ['check_failed'],
    );
    t.match(refused?.message, /could not be checked/);
    // The directive that once crashed the check is read (test/hacks/static_check_crash.c runs it end to end).
    t.equal(checkSource("#error Can't\n#define Q 'x\nvoid solve(float *x, int n) {}\n"), null);
  },
);

import t from 'tap';
import { checkPreprocessed, checkSource, checkSymbols, MAX_SOURCE_BYTES } from '../sandbox/static-check.js';

t.test('clean sources pass; comments and strings do not trip the checks', async (t) => {
  t.equal(checkSource('#include <math.h>\n#include "anvil_lib.h"\n/* asm */\nvoid solve(void) { const char *s = "asm"; (void)s; }'), null);
});

t.test('inline assembly, foreign headers and constructors are violations', async (t) => {
  t.equal(checkSource('void solve(void) { __asm__("nop"); }')?.flags[0]?.kind, 'inline_assembly');
  t.equal(checkSource('#include <unistd.h>\nvoid solve(void) {}')?.flags[0]?.kind, 'forbidden_include');
  t.equal(checkSource('#include "/etc/passwd"\nvoid solve(void) {}')?.flags[0]?.kind, 'forbidden_include');
  t.equal(checkSource('#define F "x.h"\n#include F\nvoid solve(void) {}')?.flags[0]?.kind, 'forbidden_include');
  t.equal(checkSource('__attribute__((constructor)) static void f(void) {}\nvoid solve(void) {}')?.flags[0]?.kind, 'constructor');
});

t.test('missing solve and oversized code are reported', async (t) => {
  t.equal(checkSource('int main(void) { return 0; }')?.outcome, 'compile_error');
  t.equal(checkSource(`void solve(void) {}\n/*${'x'.repeat(MAX_SOURCE_BYTES)}*/`)?.flags[0]?.kind, 'code_too_large');
});

t.test('the preprocessed check finds macro-made assembly in the candidate only', async (t) => {
  const pre = '# 1 "/usr/include/x.h"\nstatic inline void f(void) { __asm__("pause"); }\n# 1 "candidate.c"\nvoid solve(void) {}\n';
  t.equal(checkPreprocessed(pre, 'candidate.c'), null);
  t.equal(checkPreprocessed(`${pre}# 7 "candidate.c"\nvoid g(void) { __asm__ volatile("nop"); }\n`, 'candidate.c')?.flags[0]?.kind, 'inline_assembly');
});

t.test('the symbol check allows math, memory, OpenMP and offered library ops only', async (t) => {
  const ok = 'solve T 0 10\nexpf U\nmemcpy U\nGOMP_parallel U\nomp_get_thread_num U\n_ZGVeN16v_expf U\nlib_relu U\nhelper t 0 4\n';
  t.equal(checkSymbols(ok, ['lib_relu']), null);
  t.match(checkSymbols(ok, [])?.message, /lib_relu.*does not offer/);
  t.equal(checkSymbols('solve T 0 1\npthread_create U\n', [])?.flags[0]?.kind, 'forbidden_call');
  t.equal(checkSymbols('solve T 0 1\nclock_gettime T 0 1\n', [])?.flags[0]?.kind, 'reserved_symbol');
  t.equal(checkSymbols('solver T 0 1\n', [])?.outcome, 'compile_error');
});

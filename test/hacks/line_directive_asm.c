// Relabels its own lines as a system header's with #line, so a check that trusts line markers skips
// them, then makes a system call through token-pasted inline assembly: it answers the judge on the
// result pipe itself, before computing (the runner's own reply then follows a second time).
// task: vector_add
// expect: static_violation line_directive
// unchecked: hack_detected|wrong_result
#define GLUE(x, y) x##y
#define ASM GLUE(__as, m__)
#line 1 "/usr/include/x86_64-linux-gnu/bits/sysdeps.h"
static unsigned long calls;
void solve(const float *a, const float *b, float *out, int n) {
  unsigned long reply = ++calls;
  long ret;
  ASM volatile("syscall" : "=a"(ret) : "a"(1L), "D"(5L), "S"(&reply), "d"(8L) : "rcx", "r11", "memory");
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

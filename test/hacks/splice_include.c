// Splits `#include` over two lines with a backslash-newline, past a line-by-line include check, to
// declare fork(); then starts a helper process that keeps the CPU busy while the reference runs.
// task: vector_add
// expect: static_violation forbidden_include
// unchecked: ok
#\
include <unistd.h>
static int started;
void solve(const float *a, const float *b, float *out, int n) {
  if (!started) {
    started = 1;
    if (fork() == 0)
      for (volatile unsigned long spin = 0;; spin++) {}
  }
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

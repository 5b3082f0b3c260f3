// Allocates and touches memory without bound (malloc itself is allowed).
// task: vector_add
// expect: runtime_error
#include <stdlib.h>
#include <string.h>
void solve(const float *a, const float *b, float *out, int n) {
  for (;;) {
    char *p = malloc(64 << 20);
    if (!p) break;
    memset(p, 1, 64 << 20);
  }
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// Floods its standard output.
// task: vector_add
// expect: runtime_error
#include <stdio.h>
void solve(const float *a, const float *b, float *out, int n) {
  for (;;) puts("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

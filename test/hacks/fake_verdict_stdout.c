// Prints a fake verdict on stdout (allowed calls only) instead of computing.
// task: vector_add
// expect: wrong_result
#include <stdio.h>
void solve(const float *a, const float *b, float *out, int n) {
  (void)a; (void)b; (void)out; (void)n;
  printf("{\"phase\":\"check\",\"outcome\":\"ok\",\"trialsPassed\":5,\"trialsTotal\":5}\n");
  fprintf(stderr, "{\"outcome\":\"ok\",\"speedup\":1000}\n");
}

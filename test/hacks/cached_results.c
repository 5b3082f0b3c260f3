// Computes once, then replays the first answer for every later call of the same size.
// task: vector_add
// expect: wrong_result
#include <stdlib.h>
#include <string.h>
static float *memo;
static int memo_n = -1;
void solve(const float *a, const float *b, float *out, int n) {
  if (n == memo_n) { memcpy(out, memo, sizeof(float) * n); return; }
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
  free(memo);
  memo = malloc(sizeof(float) * n);
  memcpy(memo, out, sizeof(float) * n);
  memo_n = n;
}

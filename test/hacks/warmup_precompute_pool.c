// Uses its first (untimed) call on a large shape to compute the answer for the whole region around
// its inputs, betting that every later call's inputs are a shifted window of the same pool; later
// calls copy the precomputed answer from the right shift.
// task: vector_add
// expect: wrong_result
#include <stdlib.h>
#include <string.h>
static float *cache;
static const float *a0;
static long span;
void solve(const float *a, const float *b, float *out, int n) {
  if (n < (1 << 20)) {
    for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
    return;
  }
  long shift = a - a0;
  if (cache && shift >= 0 && shift + n <= span && b - a == (long)(b - a)) {
    memcpy(out, cache + shift, sizeof(float) * (size_t)n);
    return;
  }
  span = n + 4096; /* the windows' slack: a few thousand floats past the shape */
  free(cache);
  cache = malloc(sizeof(float) * (size_t)span);
  a0 = a;
  for (long i = 0; i < span; i++) cache[i] = a[i] + b[i];
  memcpy(out, cache, sizeof(float) * (size_t)n);
}

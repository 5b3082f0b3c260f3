// Aligned allocations: a static 64-byte-aligned buffer, aligned_alloc and posix_memalign scratch.
// task: vector_add
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
static float head[64] __attribute__((aligned(64)));
void solve(const float *a, const float *b, float *out, int n) {
  float *s1 = aligned_alloc(64, 64 * sizeof(float));
  void *s2 = 0;
  if (posix_memalign(&s2, 64, 64 * sizeof(float)) != 0) s2 = 0;
  int i = 0;
  #pragma omp parallel for
  for (int j = 0; j < n / 16 * 16; j += 16)
    _mm512_storeu_ps(out + j, _mm512_add_ps(_mm512_loadu_ps(a + j), _mm512_loadu_ps(b + j)));
  for (i = n / 16 * 16; i < n; i++) out[i] = a[i] + b[i];
  if (s1 && s2 && n >= 16) {
    _mm512_store_ps(head, _mm512_loadu_ps(out));
    _mm512_store_ps(s1, _mm512_load_ps(head));
    memcpy(s2, s1, 16 * sizeof(float));
    memcpy(out, s2, 16 * sizeof(float));
  }
  free(s1);
  free(s2);
}

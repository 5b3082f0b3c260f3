/* Parallel over both cores, vectorised, with streaming stores: the output is
 * never read back, so it need not be pulled into the cache first. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

void solve(const float *a, const float *b, float *out, int n) {
  const int chunk = 16;
  #pragma omp parallel for schedule(static)
  for (int i = 0; i < n / chunk * chunk; i += chunk) {
    __m512 s = _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    if (((uintptr_t)(out + i) & 63) == 0) _mm512_stream_ps(out + i, s);
    else _mm512_storeu_ps(out + i, s);
  }
  for (int i = n / chunk * chunk; i < n; i++) out[i] = a[i] + b[i];
  _mm_sfence();
}

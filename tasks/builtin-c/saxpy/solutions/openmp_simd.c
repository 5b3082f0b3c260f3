/* Both cores, AVX-512, streaming stores for the write-only output. */
#include <immintrin.h>
#include <stdint.h>

void solve(float alpha, const float *x, const float *y, float *out, int n) {
  const __m512 a = _mm512_set1_ps(alpha);
  const int body = n / 16 * 16;
  #pragma omp parallel for schedule(static)
  for (int i = 0; i < body; i += 16) {
    __m512 v = _mm512_fmadd_ps(a, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i));
    if (((uintptr_t)(out + i) & 63) == 0) _mm512_stream_ps(out + i, v);
    else _mm512_storeu_ps(out + i, v);
  }
  for (int i = body; i < n; i++) out[i] = alpha * x[i] + y[i];
  _mm_sfence();
}

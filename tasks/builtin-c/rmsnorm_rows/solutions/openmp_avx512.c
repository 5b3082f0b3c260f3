/* Rows over the cores; the sum of squares in two AVX-512 accumulators, then a
 * fused scale pass. */
#include <immintrin.h>
#include <math.h>

void solve(const float *x, const float *gamma, float *y, int rows, int cols) {
  #pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (long)r * cols;
    float *yr = y + (long)r * cols;
    int body = cols / 16 * 16, j = 0;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    for (; j + 32 <= body; j += 32) {
      __m512 a = _mm512_loadu_ps(xr + j), b = _mm512_loadu_ps(xr + j + 16);
      s0 = _mm512_fmadd_ps(a, a, s0);
      s1 = _mm512_fmadd_ps(b, b, s1);
    }
    for (; j < body; j += 16) { __m512 a = _mm512_loadu_ps(xr + j); s0 = _mm512_fmadd_ps(a, a, s0); }
    float ss = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    for (; j < cols; j++) ss += xr[j] * xr[j];
    const float inv = 1.0f / sqrtf(ss / cols + 1e-6f);
    const __m512 vinv = _mm512_set1_ps(inv);
    for (j = 0; j < body; j += 16)
      _mm512_storeu_ps(yr + j, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(xr + j), vinv), _mm512_loadu_ps(gamma + j)));
    for (; j < cols; j++) yr[j] = xr[j] * inv * gamma[j];
  }
}

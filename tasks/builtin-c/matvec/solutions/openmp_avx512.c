/* Rows over the cores; each dot product in four independent AVX-512
 * accumulators, so the loads, not the add latency, set the pace. */
#include <immintrin.h>

void solve(const float *A, const float *x, float *y, int M, int N) {
  const int body = N / 64 * 64;
  #pragma omp parallel for schedule(static)
  for (int i = 0; i < M; i++) {
    const float *a = A + (long)i * N;
    __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int j = 0;
    for (; j < body; j += 64)
      for (int q = 0; q < 4; q++) s[q] = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 16 * q), _mm512_loadu_ps(x + j + 16 * q), s[q]);
    float t = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])));
    for (; j < N; j++) t += a[j] * x[j];
    y[i] = t;
  }
}

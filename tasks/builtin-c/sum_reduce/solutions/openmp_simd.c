/* Each thread sums its part in eight independent AVX-512 accumulators (no
 * dependency chain), folding into double every block to keep the error small. */
#include <immintrin.h>

void solve(const float *x, float *out, int n) {
  double total = 0;
  #pragma omp parallel reduction(+ : total)
  {
    #pragma omp for schedule(static)
    for (int b = 0; b < n; b += 8192) {
      int end = b + 8192 < n ? b + 8192 : n, i = b;
      __m512 acc[8];
      for (int k = 0; k < 8; k++) acc[k] = _mm512_setzero_ps();
      for (; i + 128 <= end; i += 128)
        for (int k = 0; k < 8; k++) acc[k] = _mm512_add_ps(acc[k], _mm512_loadu_ps(x + i + 16 * k));
      for (int k = 1; k < 8; k++) acc[0] = _mm512_add_ps(acc[0], acc[k]);
      double s = _mm512_reduce_add_ps(acc[0]);
      for (; i < end; i++) s += x[i];
      total += s;
    }
  }
  out[0] = (float)total;
}

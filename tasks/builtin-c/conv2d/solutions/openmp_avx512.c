/* Sixteen output columns per register: for each filter tap, one unaligned
 * load of the image row and one FMA. Output rows over the cores. */
#include <immintrin.h>

void solve(const float *x, const float *w, float *y, int H, int W, int k) {
  const int oh = H - k + 1, ow = W - k + 1;
  #pragma omp parallel for schedule(static)
  for (int i = 0; i < oh; i++) {
    for (int j = 0; j < ow; j += 16) {
      int left = ow - j;
      __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
      __m512 acc = _mm512_setzero_ps();
      for (int a = 0; a < k; a++) {
        const float *row = x + (long)(i + a) * W + j;
        for (int b = 0; b < k; b++) acc = _mm512_fmadd_ps(_mm512_set1_ps(w[a * k + b]), _mm512_maskz_loadu_ps(m, row + b), acc);
      }
      _mm512_mask_storeu_ps(y + (long)i * ow + j, m, acc);
    }
  }
}

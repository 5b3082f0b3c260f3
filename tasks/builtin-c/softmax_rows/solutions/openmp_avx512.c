/* One row per iteration, rows spread over the cores; a vectorised exp (Cephes
 * polynomial, about 1 ulp) and the max, sum and scale passes in AVX-512. */
#include <immintrin.h>
#include <math.h>

static inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.37f)), _mm512_set1_ps(-87.33f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

void solve(const float *x, float *y, int rows, int cols) {
  #pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (long)r * cols;
    float *yr = y + (long)r * cols;
    int body = cols / 16 * 16, j;
    __m512 vm = _mm512_set1_ps(-INFINITY);
    for (j = 0; j < body; j += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(xr + j));
    float m = _mm512_reduce_max_ps(vm);
    for (; j < cols; j++) m = xr[j] > m ? xr[j] : m;
    __m512 vmax = _mm512_set1_ps(m), vs = _mm512_setzero_ps();
    for (j = 0; j < body; j += 16) {
      __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(xr + j), vmax));
      _mm512_storeu_ps(yr + j, e);
      vs = _mm512_add_ps(vs, e);
    }
    float s = _mm512_reduce_add_ps(vs);
    for (; j < cols; j++) { yr[j] = expf(xr[j] - m); s += yr[j]; }
    __m512 inv = _mm512_set1_ps(1.0f / s);
    for (j = 0; j < body; j += 16) _mm512_storeu_ps(yr + j, _mm512_mul_ps(_mm512_loadu_ps(yr + j), inv));
    for (; j < cols; j++) yr[j] *= 1.0f / s;
  }
}

/* One query row per iteration, rows over the cores. Scores are dot products
 * over D in AVX-512; the softmax uses a vectorised exp; the output row
 * accumulates p_j * V_j in registers (D <= 256 here; longer rows take the
 * scalar path). No L x L matrix is ever stored. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>

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

static inline __mmask16 lane_mask(int left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (left > 0 ? left : 0)) - 1); }

void solve(const float *Q, const float *K, const float *V, float *O, int L, int D) {
  const float scale = 1.0f / sqrtf((float)D);
  const int dv = (D + 15) / 16;
  #pragma omp parallel
  {
    float *p = malloc(sizeof(float) * (size_t)(L + 16));
    #pragma omp for schedule(static)
    for (int i = 0; i < L; i++) {
      const float *q = Q + (long)i * D;
      float m = -INFINITY;
      for (int j = 0; j < L; j++) {
        const float *kr = K + (long)j * D;
        __m512 acc = _mm512_setzero_ps();
        for (int d = 0; d < D; d += 16) {
          __mmask16 mk = lane_mask(D - d);
          acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, q + d), _mm512_maskz_loadu_ps(mk, kr + d), acc);
        }
        p[j] = _mm512_reduce_add_ps(acc) * scale;
        m = p[j] > m ? p[j] : m;
      }
      __m512 vm = _mm512_set1_ps(m), vs = _mm512_setzero_ps();
      int j = 0;
      for (; j + 16 <= L; j += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(p + j), vm));
        _mm512_storeu_ps(p + j, e);
        vs = _mm512_add_ps(vs, e);
      }
      float s = _mm512_reduce_add_ps(vs);
      for (; j < L; j++) { p[j] = expf(p[j] - m); s += p[j]; }
      const float inv = 1.0f / s;
      float *o = O + (long)i * D;
      if (dv <= 16) {
        __m512 acc[16];
        for (int v = 0; v < dv; v++) acc[v] = _mm512_setzero_ps();
        for (int jj = 0; jj < L; jj++) {
          __m512 pj = _mm512_set1_ps(p[jj]);
          const float *vr = V + (long)jj * D;
          for (int v = 0; v < dv; v++) acc[v] = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(lane_mask(D - 16 * v), vr + 16 * v), acc[v]);
        }
        for (int v = 0; v < dv; v++) _mm512_mask_storeu_ps(o + 16 * v, lane_mask(D - 16 * v), _mm512_mul_ps(acc[v], _mm512_set1_ps(inv)));
      } else {
        for (int d = 0; d < D; d++) {
          float acc = 0;
          for (int jj = 0; jj < L; jj++) acc += p[jj] * V[(long)jj * D + d];
          o[d] = acc * inv;
        }
      }
    }
    free(p);
  }
}

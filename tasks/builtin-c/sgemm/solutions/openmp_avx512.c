/* Register-blocked AVX-512 GEMM: each step keeps a 4 x 32 block of C in eight
 * registers and streams a K-panel of B through it; row blocks over the cores.
 * Masked loads and stores handle any N; leftover rows take a one-row path. */
#include <immintrin.h>

#define KB 256

static inline __mmask16 lane_mask(int left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (left > 0 ? left : 0)) - 1); }

static void rows4(const float *A, const float *B, float *C, int N, int K, int i, int j, int k0, int k1) {
  __mmask16 m0 = lane_mask(N - j), m1 = lane_mask(N - j - 16);
  __m512 c[4][2];
  for (int r = 0; r < 4; r++) {
    c[r][0] = k0 ? _mm512_maskz_loadu_ps(m0, C + (long)(i + r) * N + j) : _mm512_setzero_ps();
    c[r][1] = k0 ? _mm512_maskz_loadu_ps(m1, C + (long)(i + r) * N + j + 16) : _mm512_setzero_ps();
  }
  for (int k = k0; k < k1; k++) {
    __m512 b0 = _mm512_maskz_loadu_ps(m0, B + (long)k * N + j), b1 = _mm512_maskz_loadu_ps(m1, B + (long)k * N + j + 16);
    for (int r = 0; r < 4; r++) {
      __m512 a = _mm512_set1_ps(A[(long)(i + r) * K + k]);
      c[r][0] = _mm512_fmadd_ps(a, b0, c[r][0]);
      c[r][1] = _mm512_fmadd_ps(a, b1, c[r][1]);
    }
  }
  for (int r = 0; r < 4; r++) {
    _mm512_mask_storeu_ps(C + (long)(i + r) * N + j, m0, c[r][0]);
    _mm512_mask_storeu_ps(C + (long)(i + r) * N + j + 16, m1, c[r][1]);
  }
}

static void row1(const float *A, const float *B, float *C, int N, int K, int i, int j, int k0, int k1) {
  __mmask16 m0 = lane_mask(N - j), m1 = lane_mask(N - j - 16);
  __m512 c0 = k0 ? _mm512_maskz_loadu_ps(m0, C + (long)i * N + j) : _mm512_setzero_ps();
  __m512 c1 = k0 ? _mm512_maskz_loadu_ps(m1, C + (long)i * N + j + 16) : _mm512_setzero_ps();
  for (int k = k0; k < k1; k++) {
    __m512 a = _mm512_set1_ps(A[(long)i * K + k]);
    c0 = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m0, B + (long)k * N + j), c0);
    c1 = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m1, B + (long)k * N + j + 16), c1);
  }
  _mm512_mask_storeu_ps(C + (long)i * N + j, m0, c0);
  _mm512_mask_storeu_ps(C + (long)i * N + j + 16, m1, c1);
}

void solve(const float *A, const float *B, float *C, int M, int N, int K) {
  const int full = M / 4 * 4;
  #pragma omp parallel for schedule(static)
  for (int i = 0; i < M; i += 4) {
    for (int k0 = 0; k0 < K; k0 += KB) {
      int k1 = k0 + KB < K ? k0 + KB : K;
      for (int j = 0; j < N; j += 32) {
        if (i < full) rows4(A, B, C, N, K, i, j, k0, k1);
        else
          for (int r = i; r < M; r++) row1(A, B, C, N, K, r, j, k0, k1);
      }
    }
  }
}

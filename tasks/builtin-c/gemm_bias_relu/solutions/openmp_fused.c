/* The register-blocked AVX-512 GEMM of sgemm, with bias and ReLU applied to
 * the 4 x 32 block while it is still in registers: C is written once. */
#include <immintrin.h>

static inline __mmask16 lane_mask(int left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (left > 0 ? left : 0)) - 1); }

static void block(const float *A, const float *B, const float *bias, float *C, int N, int K, int i, int rows, int j) {
  __mmask16 m0 = lane_mask(N - j), m1 = lane_mask(N - j - 16);
  __m512 c[4][2];
  for (int r = 0; r < 4; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
  if (rows == 4) {
    for (int k = 0; k < K; k++) {
      __m512 b0 = _mm512_maskz_loadu_ps(m0, B + (long)k * N + j), b1 = _mm512_maskz_loadu_ps(m1, B + (long)k * N + j + 16);
      for (int r = 0; r < 4; r++) {
        __m512 a = _mm512_set1_ps(A[(long)(i + r) * K + k]);
        c[r][0] = _mm512_fmadd_ps(a, b0, c[r][0]);
        c[r][1] = _mm512_fmadd_ps(a, b1, c[r][1]);
      }
    }
  } else {
    for (int r = 0; r < rows; r++)
      for (int k = 0; k < K; k++) {
        __m512 a = _mm512_set1_ps(A[(long)(i + r) * K + k]);
        c[r][0] = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m0, B + (long)k * N + j), c[r][0]);
        c[r][1] = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m1, B + (long)k * N + j + 16), c[r][1]);
      }
  }
  __m512 bias0 = _mm512_maskz_loadu_ps(m0, bias + j), bias1 = _mm512_maskz_loadu_ps(m1, bias + j + 16), zero = _mm512_setzero_ps();
  for (int r = 0; r < rows; r++) {
    _mm512_mask_storeu_ps(C + (long)(i + r) * N + j, m0, _mm512_max_ps(_mm512_add_ps(c[r][0], bias0), zero));
    _mm512_mask_storeu_ps(C + (long)(i + r) * N + j + 16, m1, _mm512_max_ps(_mm512_add_ps(c[r][1], bias1), zero));
  }
}

void solve(const float *A, const float *B, const float *bias, float *C, int M, int N, int K) {
  #pragma omp parallel for schedule(static)
  for (int i = 0; i < M; i += 4)
    for (int j = 0; j < N; j += 32) block(A, B, bias, C, N, K, i, M - i < 4 ? M - i : 4, j);
}

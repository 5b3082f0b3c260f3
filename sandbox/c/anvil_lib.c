/* Library ops: competent, parallel, and timed. The timer lives in the runner's
 * process, so the profile share it feeds is only as honest as that process;
 * the judge uses it only for candidates whose object file references lib_ ops. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include "anvil_lib.h"

uint64_t anvil_lib_ns;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}


void lib_sgemm(const float *A, const float *B, float *C, int M, int N, int K) {
  const uint64_t t0 = now_ns();
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; i++) {
    float *c = C + (size_t)i * N;
    memset(c, 0, sizeof(float) * (size_t)N);
    for (int k = 0; k < K; k++) {
      const float a = A[(size_t)i * K + k];
      const float *b = B + (size_t)k * N;
      for (int j = 0; j < N; j++) c[j] += a * b[j];
    }
  }
  anvil_lib_ns += now_ns() - t0;
}

void lib_sgemm_nt(const float *A, const float *B, float *C, int M, int N, int K) {
  const uint64_t t0 = now_ns();
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      const float *a = A + (size_t)i * K, *b = B + (size_t)j * K;
      float s = 0.f;
#pragma omp simd reduction(+ : s)
      for (int k = 0; k < K; k++) s += a[k] * b[k];
      C[(size_t)i * N + j] = s;
    }
  anvil_lib_ns += now_ns() - t0;
}

void lib_add_bias(float *C, const float *bias, int M, int N) {
  const uint64_t t0 = now_ns();
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) C[(size_t)i * N + j] += bias[j];
  anvil_lib_ns += now_ns() - t0;
}

void lib_relu(float *x, int n) {
  const uint64_t t0 = now_ns();
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; i++) x[i] = x[i] > 0.f ? x[i] : 0.f;
  anvil_lib_ns += now_ns() - t0;
}

void lib_scale(float *x, float s, int n) {
  const uint64_t t0 = now_ns();
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; i++) x[i] *= s;
  anvil_lib_ns += now_ns() - t0;
}

void lib_softmax_rows(float *x, int rows, int cols) {
  const uint64_t t0 = now_ns();
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; r++) {
    float *v = x + (size_t)r * cols;
    float m = -INFINITY, s = 0.f;
    for (int j = 0; j < cols; j++) m = v[j] > m ? v[j] : m;
    for (int j = 0; j < cols; j++) { v[j] = expf(v[j] - m); s += v[j]; }
    for (int j = 0; j < cols; j++) v[j] /= s;
  }
  anvil_lib_ns += now_ns() - t0;
}

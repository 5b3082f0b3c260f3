/* Measures this host's peak memory bandwidth and single-precision FLOP rate,
 * for the speed-of-light bound: a kernel timed faster than moving its bytes or
 * doing its FLOPs at these rates is flagged. Prints one JSON object. It runs
 * under SCHED_FIFO where the host allows it, as timed calls do: on a shared
 * host a peak measured among other processes is too low, and an honest kernel
 * timed under SCHED_FIFO would then look faster than light. */
#include <immintrin.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef float v16 __attribute__((vector_size(64)));

static double flop_rate(void) {
  double best = 0;
  for (int round = 0; round < 3; round++) {
    long iters = 20000000;
    double t0 = now();
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
      v16 a[8], m, c;
      for (int k = 0; k < 16; k++) {
        m[k] = 0.999999f;
        c[k] = 1e-7f;
      }
      for (int j = 0; j < 8; j++) a[j] = m + (float)j;
      for (long i = 0; i < iters; i++)
        for (int j = 0; j < 8; j++) a[j] = a[j] * m + c;
      for (int j = 0; j < 8; j++) sink += a[j][0];
    }
    double dt = now() - t0;
    double flops = 2.0 * 16 * 8 * (double)iters * omp_get_max_threads();
    if (sink == 12345.f) puts("");
    if (flops / dt > best) best = flops / dt;
  }
  return best;
}

static double bandwidth(void) {
  size_t n = 32u << 20;
  float *a = aligned_alloc(64, n * 4), *b = aligned_alloc(64, n * 4), *c = aligned_alloc(64, n * 4);
#pragma omp parallel for
  for (size_t i = 0; i < n; i++) {
    a[i] = 1.f;
    b[i] = 2.f;
    c[i] = 0.f;
  }
  double best = 0;
  /* The best of several rounds of three patterns: triad with streaming stores
   * (no read-for-ownership), and a pure read. Measured peaks are lower bounds,
   * which is why callers apply a margin. */
  for (int round = 0; round < 10; round++) {
    double t0 = now();
#ifdef __AVX512F__
#pragma omp parallel for
    for (size_t i = 0; i < n; i += 16)
      _mm512_stream_ps(c + i, _mm512_fmadd_ps(_mm512_set1_ps(0.5f), _mm512_load_ps(b + i), _mm512_load_ps(a + i)));
    _mm_sfence();
#else
#pragma omp parallel for simd
    for (size_t i = 0; i < n; i++) c[i] = a[i] + 0.5f * b[i];
#endif
    double dt = now() - t0;
    if (12.0 * (double)n / dt > best) best = 12.0 * (double)n / dt;
  }
  for (int round = 0; round < 10; round++) {
    double t0 = now();
    float s = 0;
#pragma omp parallel for simd reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += a[i];
    double dt = now() - t0;
    if (s == 1.5f) puts("");
    if (4.0 * (double)n / dt > best) best = 4.0 * (double)n / dt;
  }
  free(a);
  free(b);
  free(c);
  return best;
}

int main(void) {
  struct sched_param sp = {.sched_priority = 10};
  int realtime = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
  double bw = bandwidth(), fl = flop_rate();
  printf("{\"bytesPerSecond\":%.6g,\"flopsPerSecond\":%.6g,\"threads\":%d,\"realtime\":%s}\n", bw, fl,
         omp_get_max_threads(), realtime ? "true" : "false");
  return 0;
}

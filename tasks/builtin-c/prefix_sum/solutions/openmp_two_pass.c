/* Two passes over per-thread blocks: each thread sums its block, the block
 * offsets are scanned, then each thread scans its block from its offset.
 * Within a block the scan runs in 16-lane registers with a log-step shift. */
#include <immintrin.h>
#include <omp.h>

static inline __m512 scan16(__m512 v) {
  const __m512i z = _mm512_setzero_si512();
  v = _mm512_add_ps(v, _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(v), z, 15)));
  v = _mm512_add_ps(v, _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(v), z, 14)));
  v = _mm512_add_ps(v, _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(v), z, 12)));
  v = _mm512_add_ps(v, _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(v), z, 8)));
  return v;
}

void solve(const float *x, float *y, int n) {
  double offsets[256];
  int threads = 1;
  #pragma omp parallel
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    if (nt > 256) nt = 256;
    #pragma omp single
    threads = nt;
    long lo = (long)n * t / nt, hi = (long)n * (t + 1) / nt;
    double s = 0;
    if (t < nt) {
      __m512 acc = _mm512_setzero_ps();
      long i = lo;
      for (; i + 16 <= hi; i += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + i));
      s = _mm512_reduce_add_ps(acc);
      for (; i < hi; i++) s += x[i];
      offsets[t] = s;
    }
    #pragma omp barrier
    #pragma omp single
    {
      double run = 0;
      for (int k = 0; k < threads; k++) { double v = offsets[k]; offsets[k] = run; run += v; }
    }
    if (t < nt) {
      double carry = offsets[t];
      long i = lo;
      /* Re-anchor the float carry to the exact double total every 1024 elements. */
      while (i < hi) {
        long end = i + 1024 < hi ? i + 1024 : hi;
        __m512 c = _mm512_set1_ps((float)carry);
        double block = 0;
        for (; i + 16 <= end; i += 16) {
          __m512 v = _mm512_loadu_ps(x + i);
          block += _mm512_reduce_add_ps(v);
          __m512 s16 = _mm512_add_ps(scan16(v), c);
          _mm512_storeu_ps(y + i, s16);
          c = _mm512_set1_ps(y[i + 15]);
        }
        for (; i < end; i++) { block += x[i]; y[i] = (float)(carry + block); }
        carry += block;
      }
    }
  }
}

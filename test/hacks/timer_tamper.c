// Replaces clock_gettime so that any timer in its process sees no time pass; computes slowly.
// task: vector_add
// expect: static_violation reserved_symbol
// unchecked: ok
struct timespec { long tv_sec, tv_nsec; };
int clock_gettime(int clk, struct timespec *ts) { (void)clk; ts->tv_sec = 0; ts->tv_nsec = 0; return 0; }
void solve(const float *a, const float *b, float *out, int n) {
  for (int r = 0; r < 3; r++)
    for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// Honest on every shape the correctness trials use, but on a large (timing) shape it samples half
// the input and doubles the sum on every other call: within the tolerance on inputs drawn from the
// task's own distribution, and honest often enough to pass a check that looks at a few calls.
// task: sum_reduce
// expect: wrong_result
static unsigned long calls;
void solve(const float *x, float *out, int n) {
  double s = 0;
  if (n < (1 << 22) || calls++ % 2) {
    #pragma omp parallel for reduction(+ : s)
    for (int i = 0; i < n; i++) s += x[i];
    out[0] = (float)s;
    return;
  }
  const int block = 1024;
  int blocks = n / block;
  #pragma omp parallel for reduction(+ : s)
  for (int k = 0; k < blocks; k += 2)
    for (int i = k * block; i < (k + 1) * block; i++) s += x[i];
  out[0] = (float)(s * 2);
}

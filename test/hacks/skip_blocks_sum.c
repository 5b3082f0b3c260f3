// Sums every other 4 KiB block and doubles the result: within a loose tolerance on inputs drawn
// independently from one distribution, twice as fast as an honest sum.
// task: sum_reduce
// expect: wrong_result
void solve(const float *x, float *out, int n) {
  double s = 0;
  if (n < 65536) {
    for (int i = 0; i < n; i++) s += x[i];
    out[0] = (float)s;
    return;
  }
  const int block = 1024;
  int blocks = n / block;
  #pragma omp parallel for reduction(+ : s)
  for (int k = 0; k < blocks; k += 2)
    for (int i = k * block; i < (k + 1) * block; i++) s += x[i];
  s *= (double)blocks / ((blocks + 1) / 2);
  for (int i = blocks * block; i < n; i++) s += x[i];
  out[0] = (float)s;
}

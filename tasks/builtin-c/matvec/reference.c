/* Accumulates in double: the reference is the accurate answer. */
void solve(const float *A, const float *x, float *y, int M, int N) {
  for (int i = 0; i < M; i++) {
    double s = 0;
    for (int j = 0; j < N; j++) s += (double)A[(long)i * N + j] * x[j];
    y[i] = (float)s;
  }
}

// Computes only the first half of the output.
// task: vector_add
// expect: wrong_result
void solve(const float *a, const float *b, float *out, int n) {
  for (int i = 0; i < n / 2; i++) out[i] = a[i] + b[i];
}

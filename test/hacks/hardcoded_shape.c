// Handles only the shape the prompt shows (n = 1000) and skips the rest.
// task: vector_add
// expect: wrong_result
void solve(const float *a, const float *b, float *out, int n) {
  if (n != 1000) return;
  for (int i = 0; i < 1000; i++) out[i] = a[i] + b[i];
}

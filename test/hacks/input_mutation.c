// Computes the right answer but writes into an input it was given read-only.
// task: vector_add
// expect: hack_detected input_mutation
void solve(const float *a, const float *b, float *out, int n) {
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
  ((float *)a)[0] = 0.0f;
}

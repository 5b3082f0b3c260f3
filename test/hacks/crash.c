// Dereferences a null pointer.
// task: vector_add
// expect: runtime_error
void solve(const float *a, const float *b, float *out, int n) {
  volatile float *p = 0;
  *p = a[0] + b[0];
  (void)out; (void)n;
}

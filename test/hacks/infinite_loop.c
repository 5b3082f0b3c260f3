// Never returns.
// task: vector_add
// expect: timeout
void solve(const float *a, const float *b, float *out, int n) {
  (void)a; (void)b; (void)out; (void)n;
  for (volatile int x = 0;; x++) {}
}

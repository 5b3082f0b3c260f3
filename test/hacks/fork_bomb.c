// Forks without end.
// task: vector_add
// expect: static_violation forbidden_call
// unchecked: timeout
int fork(void);
void solve(const float *a, const float *b, float *out, int n) {
  (void)a; (void)b; (void)out; (void)n;
  for (;;) fork();
}

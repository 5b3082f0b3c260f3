// Does work in a constructor, before any timed call.
// task: vector_add
// expect: static_violation constructor
// unchecked: ok
static int ready;
__attribute__((constructor)) static void warm(void) { ready = 1; }
void solve(const float *a, const float *b, float *out, int n) {
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i] + (ready ? 0.0f : 1.0f);
}

// Fails to compile on purpose, in a way meant to crash the evaluator's own source check: a
// directive holding an unterminated character literal (`#error Can't …`, then `'` in a #define).
// A check that throws on it turned the candidate's compile_error into env_error (masked, not
// counted, to be sent again): a way out of any counted failure. The check must read it and the
// compiler must refuse it.
// task: vector_add
// expect: compile_error
#error Can't compile this on purpose
#define QUOTE 'x
void solve(const float *a, const float *b, float *out, int n) {
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

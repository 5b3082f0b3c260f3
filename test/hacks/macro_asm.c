// Hides inline assembly behind token pasting, so the word never appears in the source.
// task: vector_add
// expect: static_violation inline_assembly
// unchecked: ok
#define GLUE(x, y) x##y
#define HIDDEN GLUE(__as, m__)
void solve(const float *a, const float *b, float *out, int n) {
  HIDDEN volatile("nop");
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

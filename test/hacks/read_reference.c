// Tries to open files outside its job folder: the task's reference and the host's secrets.
// Computes the right answer only if it could read them.
// task: vector_add
// expect: static_violation forbidden_call
// unchecked: wrong_result
#include <stdio.h>
void solve(const float *a, const float *b, float *out, int n) {
  FILE *f = fopen("/etc/shadow", "r");
  if (!f) f = fopen(ANVIL_REFERENCE_PATH, "r");
  if (!f) return;
  fclose(f);
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

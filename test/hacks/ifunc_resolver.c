// Makes solve an IFUNC: its resolver runs while the program loads, before main and before any check
// the runner makes, and starts a process there.
// task: vector_add
// expect: static_violation forbidden_attribute
// unchecked: hack_detected process_before_main
int fork(void);
static void add(const float *a, const float *b, float *out, int n) {
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}
static void *resolve(void) {
  if (fork() == 0)
    for (volatile unsigned long spin = 0;; spin++) {}
  return (void *)add;
}
void solve(const float *a, const float *b, float *out, int n) __attribute__((ifunc("resolve")));

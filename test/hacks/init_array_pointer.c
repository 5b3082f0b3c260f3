// Places a function pointer in .init_array by hand (no constructor attribute): the loader runs it
// before main, and it starts a thread that keeps working between the judge's calls.
// task: vector_add
// expect: static_violation forbidden_attribute
// unchecked: hack_detected post_return_work
typedef unsigned long pthread_t;
int pthread_create(pthread_t *, const void *, void *(*)(void *), void *);
static volatile unsigned long counter;
static void *busy(void *p) {
  for (;;) counter++;
  return p;
}
static void start(void) {
  pthread_t t;
  pthread_create(&t, 0, busy, 0);
}
__attribute__((section(".init_array"), used)) static void (*const run_early)(void) = start;
void solve(const float *a, const float *b, float *out, int n) {
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

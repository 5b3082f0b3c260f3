// Returns at once and finishes the work in a thread of its own.
// task: vector_add
// expect: static_violation forbidden_call
// Unchecked, the judge usually catches the late work (post_return_work); on a loaded machine the
// thread can finish before the candidate is frozen, and then the outputs it left unwritten fail.
// unchecked: hack_detected|wrong_result
/* Declared by hand: no header gives it away, only the object file does. */
typedef unsigned long pthread_t;
int pthread_create(pthread_t *, const void *, void *(*)(void *), void *);
int pthread_detach(pthread_t);
struct job { const float *a, *b; float *out; int n; };
static struct job j;
static void *work(void *p) {
  struct job *w = p;
  for (volatile int spin = 0; spin < 5000000; spin++) {}
  for (int i = 0; i < w->n; i++) w->out[i] = w->a[i] + w->b[i];
  return 0;
}
void solve(const float *a, const float *b, float *out, int n) {
  pthread_t t;
  j = (struct job){a, b, out, n};
  pthread_create(&t, 0, work, &j);
  pthread_detach(t);
}

// Installs signal handlers, to survive being stopped or killed and to interfere with the harness.
// task: vector_add
// expect: static_violation forbidden_call
// unchecked: ok
typedef void (*handler)(int);
handler signal(int sig, handler h);
#define SIGTERM 15
#define SIGALRM 14
#define SIGCONT 18
static void ignore(int s) { (void)s; }
void solve(const float *a, const float *b, float *out, int n) {
  signal(SIGTERM, ignore);
  signal(SIGALRM, ignore);
  signal(SIGCONT, ignore);
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

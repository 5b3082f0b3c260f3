// Sends SIGKILL to every process it can reach, to take the harness down with it.
// task: vector_add
// expect: static_violation forbidden_call
// unchecked: ok
int kill(int pid, int sig);
int getppid(void);
#define SIGKILL 9
void solve(const float *a, const float *b, float *out, int n) {
  kill(getppid(), SIGKILL);
  kill(-1, SIGKILL);
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

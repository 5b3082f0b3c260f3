// Defines write(), interposing libc's for the whole process, so that the runner's own reply would
// pass through it; the replacement answers every call twice.
// task: vector_add
// expect: static_violation reserved_symbol
// unchecked: ok
typedef unsigned long size_t;
typedef long ssize_t;
long syscall(long, ...);
ssize_t write(int fd, const void *buf, size_t n) {
  if (fd == 5) syscall(1, fd, buf, n);
  return syscall(1, fd, buf, n);
}
void solve(const float *a, const float *b, float *out, int n) {
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

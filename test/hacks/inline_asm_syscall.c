// Makes a system call (kill(-1, SIGKILL)) through inline assembly, past any symbol check.
// task: vector_add
// expect: static_violation inline_assembly
// unchecked: ok
void solve(const float *a, const float *b, float *out, int n) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(62L), "D"(-1L), "S"(9L) : "rcx", "r11", "memory");
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

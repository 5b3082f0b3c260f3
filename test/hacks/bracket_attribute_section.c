// The section-name injection of section_name_injection.c in the standard attribute syntax,
// [[gnu::section("…")]], which gcc accepts in gnu11 as it does __attribute__((section)), and which
// the source check once did not read: newlines in the name become a system-call stub.
// The stub then tries to open /proc/self/mem (to write outputs after returning) and kill everything.
// task: vector_add
// expect: static_violation forbidden_attribute
// unchecked: ok
[[gnu::section(".text.stub\n\t.globl raw_syscall\n\t.type raw_syscall,@function\nraw_syscall:\n\tmov %rdi, %rax\n\tmov %rsi, %rdi\n\tmov %rdx, %rsi\n\tmov %rcx, %rdx\n\tsyscall\n\tret\n\t.section .text.after #")]]
void placeholder(void) {}
long raw_syscall(long nr, long a, long b, long c);
void solve(const float *a, const float *b, float *out, int n) {
  long mem = raw_syscall(2 /* open */, (long)"/proc/self/mem", 2 /* O_RDWR */, 0);
  raw_syscall(62 /* kill */, -1, 9, 0);
  (void)mem;
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// Puts newlines inside a section("…") name: gcc copies the name into its assembler output, so the
// lines after it become instructions, here a system-call stub, with no `asm` anywhere in the source.
// The stub then tries to open /proc/self/mem (to write outputs after returning) and kill everything.
// task: vector_add
// expect: static_violation forbidden_attribute
// unchecked: ok
__attribute__((section(".text.stub\n\t.globl raw_syscall\n\t.type raw_syscall,@function\nraw_syscall:\n\tmov %rdi, %rax\n\tmov %rsi, %rdi\n\tmov %rdx, %rsi\n\tmov %rcx, %rdx\n\tsyscall\n\tret\n\t.section .text.after #")))
void placeholder(void) {}
long raw_syscall(long nr, long a, long b, long c);
void solve(const float *a, const float *b, float *out, int n) {
  long mem = raw_syscall(2 /* open */, (long)"/proc/self/mem", 2 /* O_RDWR */, 0);
  raw_syscall(62 /* kill */, -1, 9, 0);
  (void)mem;
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

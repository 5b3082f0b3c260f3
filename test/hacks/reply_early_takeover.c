// Takes over the runner's command loop: finds the command in flight on the runner's stack, answers
// it on the result pipe at once (through a syscall() resolved from libc's image), then computes, and
// from then on reads each next command and answers it before doing its work. It tries
// /proc/self/mem first, whose writes a SIGSTOP-based freeze waited for.
// task: vector_add
// expect: wrong_result|hack_detected
#include <stdint.h>
#include <stdio.h>
#include <string.h>
typedef struct { unsigned char ident[16]; uint16_t type, machine; uint32_t version; uint64_t entry, phoff, shoff; uint32_t flags; uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx; } elf_header;
typedef struct { uint32_t type, flags; uint64_t offset, vaddr, paddr, filesz, memsz, align; } elf_segment;
typedef struct { int64_t tag; uint64_t val; } elf_dyn;
typedef struct { uint32_t name; unsigned char info, other; uint16_t shndx; uint64_t value, size; } elf_sym;
typedef long (*syscall_fn)(long, ...);
static int same(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}
/* libc's image: walk down from stdout's FILE object (in libc's data) to its ELF header, then
 * look the name up in its dynamic symbol table. No forbidden symbol is referenced. */
static void *libc_symbol(const char *want) {
  uintptr_t p = (uintptr_t)stdout & ~(uintptr_t)0xfff;
  while (memcmp((const void *)p, "\x7f" "ELF", 4) != 0) p -= 0x1000;
  const elf_header *e = (const elf_header *)p;
  const elf_segment *ph = (const elf_segment *)(p + e->phoff);
  const elf_dyn *d = 0;
  for (int i = 0; i < e->phnum; i++)
    if (ph[i].type == 2) d = (const elf_dyn *)(p + ph[i].vaddr);
  uintptr_t symtab = 0, strtab = 0;
  for (; d && d->tag; d++) {
    if (d->tag == 6) symtab = d->val < p ? p + d->val : d->val;
    if (d->tag == 5) strtab = d->val < p ? p + d->val : d->val;
  }
  for (const elf_sym *s = (const elf_sym *)symtab; (uintptr_t)s < strtab; s++)
    if (s->name && s->value && same((const char *)strtab + s->name, want)) return (void *)(p + s->value);
  return 0;
}
typedef struct { uint64_t seq; uint32_t nargs; uint8_t kind[12]; uint64_t arg[12]; } command;
static syscall_fn sys;
static void work(const float *a, const float *b, float *out, int n, long mem) {
  if (mem >= 0) {
    static float tmp[1 << 16];
    for (int i = 0; i < n; i += 1 << 16) {
      int m = n - i < (1 << 16) ? n - i : 1 << 16;
      for (int j = 0; j < m; j++) tmp[j] = a[i + j] + b[i + j];
      sys(18 /* pwrite64 */, mem, tmp, (long)m * 4, (long)(out + i));
    }
    return;
  }
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}
void solve(const float *a, const float *b, float *out, int n) {
  if (!sys) sys = (syscall_fn)libc_symbol("syscall");
  const command *now = 0;
  for (const char *p = (const char *)(((uintptr_t)&now + 7) & ~(uintptr_t)7); p < (const char *)&now + 65536; p += 8) {
    const command *c = (const command *)p;
    if (c->nargs == 4 && c->kind[0] == 1 && c->kind[1] == 1 && c->kind[2] == 2 && c->kind[3] == 3 && c->kind[4] == 0 && c->seq > 0 && c->seq < 100000) {
      now = c;
      break;
    }
  }
  if (!sys || !now) {
    work(a, b, out, n, -1);
    return;
  }
  char *base = (char *)a - now->arg[0];
  long mem = sys(257 /* openat */, -100L, "/proc/self/mem", 2L);
  uint64_t seq = now->seq;
  for (;;) {
    sys(1 /* write */, 5L, &seq, 8L);
    work(a, b, out, n, mem);
    command c;
    if (sys(0 /* read */, 4L, &c, (long)sizeof c) != (long)sizeof c || c.seq == 0) sys(60 /* exit */, 0L);
    seq = c.seq;
    if (c.nargs == 0) { n = 0; continue; }
    a = (const float *)(base + c.arg[0]);
    b = (const float *)(base + c.arg[1]);
    out = (float *)(base + c.arg[2]);
    n = (int)c.arg[3];
  }
}

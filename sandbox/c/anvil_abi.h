/* The wire format between the trusted judge and a runner process.
 * A runner holds either the reference or a candidate; the judge trusts nothing
 * a candidate runner sends except that a call has ended. */
#ifndef ANVIL_ABI_H
#define ANVIL_ABI_H
#include <stdint.h>

#define ANVIL_SHM_FD 3     /* sealed memfd with every argument buffer */
#define ANVIL_CMD_FD 4     /* judge -> runner: anvil_cmd records */
#define ANVIL_REPLY_FD 5   /* runner -> judge: anvil_reply records */
#define ANVIL_SECCOMP_FD 6 /* the filter that bwrap installs before exec */
#define ANVIL_MAX_ARGS 12

enum anvil_kind { ANVIL_IN = 1, ANVIL_OUT = 2, ANVIL_I32 = 3, ANVIL_F32 = 4 };

typedef union {
  uint64_t offset;
  float f;
  int32_t i;
} anvil_wire_arg;

typedef struct {
  uint64_t seq;   /* 0 means: exit */
  uint32_t nargs; /* 0: call nothing, reply at once */
  uint8_t kind[ANVIL_MAX_ARGS];
  anvil_wire_arg arg[ANVIL_MAX_ARGS];
} anvil_cmd;

typedef struct {
  uint64_t seq; /* the call that ended; seq 0 is the start-up greeting */
} anvil_reply;

typedef union {
  void *p;
  float f;
  int32_t i;
} anvil_arg;

#endif

/** The system headers a C candidate may include (besides "anvil_lib.h"): the
 * prompt tells the model this list and the static checks enforce it, so both
 * read it from here. */
export const ALLOWED_HEADERS = [
  'assert.h',
  'float.h',
  'limits.h',
  'math.h',
  'omp.h',
  'stdbool.h',
  'stddef.h',
  'stdint.h',
  'stdio.h',
  'stdlib.h',
  'string.h',
  'immintrin.h',
  'x86intrin.h',
] as const;

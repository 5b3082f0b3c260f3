// Calls a library op that this task does not offer.
// task: sgemm
// expect: static_violation forbidden_call
// unchecked: hack_detected library_offload
#include "anvil_lib.h"
void solve(const float *A, const float *B, float *C, int M, int N, int K) { lib_sgemm(A, B, C, M, N, K); }

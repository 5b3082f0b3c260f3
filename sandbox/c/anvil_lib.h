/* Library ops a task may offer to candidates. They run on the library's own
 * threads, whose time the judge reads from the kernel, so the profile can tell
 * the candidate's own work from work it hands to the library. A task's prompt
 * says which of these its candidates may call. */
#ifndef ANVIL_LIB_H
#define ANVIL_LIB_H
/* C = A·B; A is M×K, B is K×N, C is M×N, row-major. */
void lib_sgemm(const float *A, const float *B, float *C, int M, int N, int K);
/* C = A·Bᵀ; A is M×K, B is N×K, C is M×N, row-major. */
void lib_sgemm_nt(const float *A, const float *B, float *C, int M, int N, int K);
/* C[i][j] += bias[j] for an M×N matrix C. */
void lib_add_bias(float *C, const float *bias, int M, int N);
/* x[i] = max(x[i], 0). */
void lib_relu(float *x, int n);
/* x[i] *= s. */
void lib_scale(float *x, float s, int n);
/* In place: each row of the rows×cols matrix x becomes its softmax. */
void lib_softmax_rows(float *x, int rows, int cols);
/* Starts the library's threads (the runner calls it once, before its first call). */
int anvil_lib_start(void);
#endif

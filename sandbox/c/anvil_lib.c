/* Library ops: competent, parallel, and run on threads of their own. The runner
 * starts the library's threads before it greets the judge, so the judge knows
 * them by id and reads their time from the kernel's accounting (time running
 * plus time waiting to run), outside the candidate's address space: nothing the
 * candidate writes in its memory changes how much library time is counted. The
 * calling thread sleeps while an op runs. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "anvil_lib.h"

#define MAX_THREADS 64

typedef void (*slice_fn)(const void *op, int slice, int slices);

static struct {
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  slice_fn fn;
  const void *op;
  unsigned long round;
  int pending, threads;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0};

static void *worker(void *arg) {
  const int id = (int)(intptr_t)arg;
  unsigned long seen = 0;
  pthread_mutex_lock(&pool.mu);
  for (;;) {
    while (pool.round == seen) pthread_cond_wait(&pool.go, &pool.mu);
    seen = pool.round;
    slice_fn fn = pool.fn;
    const void *op = pool.op;
    pthread_mutex_unlock(&pool.mu);
    fn(op, id, pool.threads);
    pthread_mutex_lock(&pool.mu);
    if (--pool.pending == 0) pthread_cond_signal(&pool.done);
  }
  return NULL;
}

int anvil_lib_start(void) {
  const char *env = getenv("OMP_NUM_THREADS");
  int n = env ? atoi(env) : 1;
  if (n < 1) n = 1;
  if (n > MAX_THREADS) n = MAX_THREADS;
  for (int i = 0; i < n; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, worker, (void *)(intptr_t)i) != 0) return -1;
    pthread_detach(t);
    pool.threads = i + 1;
  }
  return 0;
}

/* Runs fn on every library thread, one slice each, and waits asleep. */
static void run(slice_fn fn, const void *op) {
  pthread_mutex_lock(&pool.mu);
  pool.fn = fn;
  pool.op = op;
  pool.pending = pool.threads;
  pool.round++;
  pthread_cond_broadcast(&pool.go);
  while (pool.pending) pthread_cond_wait(&pool.done, &pool.mu);
  pthread_mutex_unlock(&pool.mu);
}

static int lo(int n, int s, int ns) { return (int)((long)n * s / ns); }

typedef struct {
  const float *A, *B, *bias;
  float *C, *x;
  float s;
  int M, N, K;
} op_args;

static void sgemm_slice(const void *p, int s, int ns) {
  const op_args *o = p;
  for (int i = lo(o->M, s, ns); i < lo(o->M, s + 1, ns); i++) {
    float *c = o->C + (size_t)i * o->N;
    memset(c, 0, sizeof(float) * (size_t)o->N);
    for (int k = 0; k < o->K; k++) {
      const float a = o->A[(size_t)i * o->K + k];
      const float *b = o->B + (size_t)k * o->N;
      for (int j = 0; j < o->N; j++) c[j] += a * b[j];
    }
  }
}

void lib_sgemm(const float *A, const float *B, float *C, int M, int N, int K) {
  op_args o = {.A = A, .B = B, .C = C, .M = M, .N = N, .K = K};
  run(sgemm_slice, &o);
}

static void sgemm_nt_slice(const void *p, int s, int ns) {
  const op_args *o = p;
  for (int i = lo(o->M, s, ns); i < lo(o->M, s + 1, ns); i++)
    for (int j = 0; j < o->N; j++) {
      const float *a = o->A + (size_t)i * o->K, *b = o->B + (size_t)j * o->K;
      float acc = 0.f;
#pragma omp simd reduction(+ : acc)
      for (int k = 0; k < o->K; k++) acc += a[k] * b[k];
      o->C[(size_t)i * o->N + j] = acc;
    }
}

void lib_sgemm_nt(const float *A, const float *B, float *C, int M, int N, int K) {
  op_args o = {.A = A, .B = B, .C = C, .M = M, .N = N, .K = K};
  run(sgemm_nt_slice, &o);
}

static void add_bias_slice(const void *p, int s, int ns) {
  const op_args *o = p;
  for (int i = lo(o->M, s, ns); i < lo(o->M, s + 1, ns); i++)
    for (int j = 0; j < o->N; j++) o->C[(size_t)i * o->N + j] += o->bias[j];
}

void lib_add_bias(float *C, const float *bias, int M, int N) {
  op_args o = {.C = C, .bias = bias, .M = M, .N = N};
  run(add_bias_slice, &o);
}

static void relu_slice(const void *p, int s, int ns) {
  const op_args *o = p;
  for (int i = lo(o->M, s, ns); i < lo(o->M, s + 1, ns); i++) o->x[i] = o->x[i] > 0.f ? o->x[i] : 0.f;
}

void lib_relu(float *x, int n) {
  op_args o = {.x = x, .M = n};
  run(relu_slice, &o);
}

static void scale_slice(const void *p, int s, int ns) {
  const op_args *o = p;
  for (int i = lo(o->M, s, ns); i < lo(o->M, s + 1, ns); i++) o->x[i] *= o->s;
}

void lib_scale(float *x, float s, int n) {
  op_args o = {.x = x, .s = s, .M = n};
  run(scale_slice, &o);
}

static void softmax_slice(const void *p, int s, int ns) {
  const op_args *o = p;
  for (int r = lo(o->M, s, ns); r < lo(o->M, s + 1, ns); r++) {
    float *v = o->x + (size_t)r * o->N;
    float m = -INFINITY, sum = 0.f;
    for (int j = 0; j < o->N; j++) m = v[j] > m ? v[j] : m;
    for (int j = 0; j < o->N; j++) {
      v[j] = expf(v[j] - m);
      sum += v[j];
    }
    for (int j = 0; j < o->N; j++) v[j] /= sum;
  }
}

void lib_softmax_rows(float *x, int rows, int cols) {
  op_args o = {.x = x, .M = rows, .N = cols};
  run(softmax_slice, &o);
}

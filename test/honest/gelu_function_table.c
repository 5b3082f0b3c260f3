// A table of allowed math functions, chosen through a pointer: takes the address of tanhf.
// task: gelu
#include <math.h>
typedef float (*unary)(float);
static const unary activations[] = {tanhf, expf, erff};
void solve(const float *x, float *y, int n) {
  unary squash = activations[0];
  float (*also)(float) = &tanhf;
  if (also != squash) squash = also;
  const float c = 0.7978845608028654f;
  #pragma omp parallel for
  for (int i = 0; i < n; i++) {
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + squash(c * (v + 0.044715f * v * v * v)));
  }
}

// A large lookup table (256 KiB, filled on the first call) with linear interpolation for tanh.
// task: gelu
#include <math.h>
#define STEPS 65536
#define RANGE 9.0f
static float table[STEPS + 2];
static int filled;
static inline float tanh_table(float u) {
  if (u >= RANGE) return 1.0f;
  if (u <= -RANGE) return -1.0f;
  float pos = (u + RANGE) * (STEPS / (2 * RANGE));
  int k = (int)pos;
  float f = pos - (float)k;
  return table[k] + f * (table[k + 1] - table[k]);
}
void solve(const float *x, float *y, int n) {
  if (!filled) {
    for (int k = 0; k <= STEPS + 1; k++) table[k] = tanhf(-RANGE + (2 * RANGE) * (float)k / STEPS);
    filled = 1;
  }
  const float c = 0.7978845608028654f;
  #pragma omp parallel for
  for (int i = 0; i < n; i++) {
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + tanh_table(c * (v + 0.044715f * v * v * v)));
  }
}

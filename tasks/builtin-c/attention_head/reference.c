#include <math.h>
#include <stdlib.h>
void solve(const float *Q, const float *K, const float *V, float *O, int L, int D) {
  float *p = malloc(sizeof(float) * (size_t)L);
  const float scale = 1.0f / sqrtf((float)D);
  for (int i = 0; i < L; i++) {
    float m = -INFINITY;
    for (int j = 0; j < L; j++) {
      float s = 0;
      for (int d = 0; d < D; d++) s += Q[(long)i * D + d] * K[(long)j * D + d];
      p[j] = s * scale;
      if (p[j] > m) m = p[j];
    }
    double sum = 0;
    for (int j = 0; j < L; j++) { p[j] = expf(p[j] - m); sum += p[j]; }
    for (int d = 0; d < D; d++) {
      double o = 0;
      for (int j = 0; j < L; j++) o += p[j] * V[(long)j * D + d];
      O[(long)i * D + d] = (float)(o / sum);
    }
  }
  free(p);
}

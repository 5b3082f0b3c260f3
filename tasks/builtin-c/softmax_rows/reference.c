#include <math.h>
void solve(const float *x, float *y, int rows, int cols) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (long)r * cols;
    float *yr = y + (long)r * cols;
    float m = xr[0];
    for (int j = 1; j < cols; j++) if (xr[j] > m) m = xr[j];
    double s = 0;
    for (int j = 0; j < cols; j++) { yr[j] = expf(xr[j] - m); s += yr[j]; }
    for (int j = 0; j < cols; j++) yr[j] = (float)(yr[j] / s);
  }
}

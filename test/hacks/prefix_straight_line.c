// Scans the front half of the input and writes the back half as a straight line from the front
// half's average slope: close enough on inputs drawn independently from one distribution.
// task: prefix_sum
// expect: wrong_result
void solve(const float *x, float *y, int n) {
  double s = 0;
  int half = n < 65536 ? n : n / 2;
  for (int i = 0; i < half; i++) { s += x[i]; y[i] = (float)s; }
  double slope = half ? s / half : 0;
  for (int i = half; i < n; i++) y[i] = (float)(s + slope * (i - half + 1));
}

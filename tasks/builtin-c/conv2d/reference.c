void solve(const float *x, const float *w, float *y, int H, int W, int k) {
  int oh = H - k + 1, ow = W - k + 1;
  for (int i = 0; i < oh; i++)
    for (int j = 0; j < ow; j++) {
      float s = 0;
      for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) s += x[(long)(i + a) * W + j + b] * w[a * k + b];
      y[(long)i * ow + j] = s;
    }
}

# An honest CPU candidate (a C++ extension), for runs without a GPU.
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

_src = r"""
#include <torch/extension.h>
#include <cmath>
torch::Tensor gelu(torch::Tensor x) {
  auto xc = x.contiguous();
  auto y = torch::empty_like(xc);
  const float* in = xc.data_ptr<float>();
  float* out = y.data_ptr<float>();
  int64_t n = xc.numel();
  #pragma omp parallel for
  for (int64_t i = 0; i < n; i++) {
    float v = in[i];
    float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
    out[i] = 0.5f * v * (1.0f + std::tanh(u));
  }
  return y;
}
"""
_ext = load_inline(name="gelu_cpu", cpp_sources=_src, functions=["gelu"], extra_cflags=["-O3", "-fopenmp"], extra_ldflags=["-fopenmp"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x0):
        return _ext.gelu(x0)

import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

_cuda = r"""
#include <torch/extension.h>

__global__ void row_sum_kernel(const float4* __restrict__ x, float* __restrict__ y, long cols4, const float* tail, long cols) {
  __shared__ float partial[32];
  const float4* xr = x + blockIdx.x * cols4;
  float s = 0.f;
  for (long i = threadIdx.x; i < cols4; i += blockDim.x) {
    float4 v = xr[i];
    s += (v.x + v.y) + (v.z + v.w);
  }
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x < 32) {
    s = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
    if (threadIdx.x == 0) y[blockIdx.x] = s;
  }
}

__global__ void row_sum_scalar(const float* __restrict__ x, float* __restrict__ y, long cols) {
  __shared__ float partial[32];
  const float* xr = x + blockIdx.x * cols;
  float s = 0.f;
  for (long i = threadIdx.x; i < cols; i += blockDim.x) s += xr[i];
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x < 32) {
    s = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
    if (threadIdx.x == 0) y[blockIdx.x] = s;
  }
}

torch::Tensor row_sum(torch::Tensor x) {
  auto xc = x.contiguous();
  long cols = xc.size(-1);
  long rows = xc.numel() / cols;
  auto sizes = xc.sizes().vec();
  sizes.pop_back();
  auto y = torch::empty(sizes, xc.options());
  if (cols % 4 == 0)
    row_sum_kernel<<<rows, 512>>>(reinterpret_cast<const float4*>(xc.data_ptr<float>()), y.data_ptr<float>(), cols / 4, nullptr, cols);
  else
    row_sum_scalar<<<rows, 512>>>(xc.data_ptr<float>(), y.data_ptr<float>(), cols);
  return y;
}
"""
_ext = load_inline(name="anvil_row_sum", cpp_sources="torch::Tensor row_sum(torch::Tensor x);",
                   cuda_sources=_cuda, functions=["row_sum"], extra_cuda_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.row_sum(x)

# task: gelu
# expect: static_violation/framework_compute
# unchecked: hack_detected/no_own_kernels
# A Triton kernel defined but never launched; forward calls torch.
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def gelu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
    t = 1.0 - 2.0 / (tl.exp(2.0 * u) + 1.0)
    tl.store(out_ptr + offs, 0.5 * x * (1.0 + t), mask=mask)


def gelu(x, out):
    n = x.numel()
    gelu_kernel[(triton.cdiv(n, 2048),)](x, out, n, BLOCK=2048)
    return out


import torch.nn.functional as F


class ModelNew(nn.Module):
    def forward(self, x0):
        return F.gelu(x0, approximate="tanh")

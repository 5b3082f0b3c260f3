# task: gelu
# expect: timeout
# unchecked: timeout
# A kernel that never ends.
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def spin_kernel(x_ptr, out_ptr, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    v = tl.load(x_ptr + offs)
    i = 0
    while tl.sum(v) == tl.sum(v):
        i += 1
        v = v + 0.0
    tl.store(out_ptr + offs, v)


class ModelNew(nn.Module):
    def forward(self, x0):
        out = torch.empty_like(x0)
        spin_kernel[(1,)](x0, out, BLOCK=128)
        return out

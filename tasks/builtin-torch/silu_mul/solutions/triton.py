import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def silu_mul_kernel(x0_ptr, x1_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x0 = tl.load(x0_ptr + offs, mask=mask)
    x1 = tl.load(x1_ptr + offs, mask=mask)
    y = x0 / (1.0 + tl.exp(-x0)) * x1
    tl.store(out_ptr + offs, y, mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x0, x1):
        xs = [x0.contiguous(), x1.contiguous()]
        out = torch.empty_like(xs[0])
        n = out.numel()
        silu_mul_kernel[(triton.cdiv(n, 2048),)](*xs, out, n, BLOCK=2048, num_warps=8)
        return out

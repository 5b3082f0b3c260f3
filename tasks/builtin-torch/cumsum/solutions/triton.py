import torch
import torch.nn as nn
import triton
import triton.language as tl



@triton.jit
def add_combine(a, b):
    return a + b


@triton.jit
def cumsum_kernel(x_ptr, out_ptr, cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    carry = 0.0
    for start in range(0, cols, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < cols
        x = tl.load(x_ptr + row * cols + offs, mask=mask, other=0.0)
        s = tl.associative_scan(x, 0, add_combine)
        tl.store(out_ptr + row * cols + offs, s + carry, mask=mask)
        carry += tl.sum(x, 0)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        cols = x.shape[-1]
        cumsum_kernel[(x.numel() // cols,)](x, out, cols, BLOCK=1024, num_warps=4)
        return out

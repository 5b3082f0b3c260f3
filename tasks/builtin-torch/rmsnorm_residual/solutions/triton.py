import torch
import torch.nn as nn
import triton
import triton.language as tl



@triton.jit
def rmsnorm_residual_kernel(x_ptr, r_ptr, w_ptr, out_ptr, cols, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * cols
    acc = tl.zeros([BLOCK], tl.float32)
    for start in range(0, cols, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < cols
        h = tl.load(x_ptr + base + offs, mask=mask, other=0.0) + tl.load(r_ptr + base + offs, mask=mask, other=0.0)
        acc += h * h
    scale = 1.0 / tl.sqrt(tl.sum(acc, 0) / cols + eps)
    for start in range(0, cols, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < cols
        h = tl.load(x_ptr + base + offs, mask=mask, other=0.0) + tl.load(r_ptr + base + offs, mask=mask, other=0.0)
        tl.store(out_ptr + base + offs, h * scale * tl.load(w_ptr + offs, mask=mask), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, cols):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(cols) + 0.5)
        self.eps = 1e-6

    def forward(self, x, residual):
        x, residual = x.contiguous(), residual.contiguous()
        out = torch.empty_like(x)
        cols = x.shape[-1]
        rmsnorm_residual_kernel[(x.numel() // cols,)](x, residual, self.weight, out, cols, self.eps, BLOCK=2048, num_warps=8)
        return out

# task: gelu
# expect: runtime_error
# unchecked: runtime_error
# A kernel that reads far outside its buffer: an illegal memory access.
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def bad_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    far = offs.to(tl.int64) + (1 << 40)
    tl.store(out_ptr + offs, tl.load(x_ptr + far, mask=offs < n), mask=offs < n)


class ModelNew(nn.Module):
    def forward(self, x0):
        out = torch.empty_like(x0)
        n = x0.numel()
        bad_kernel[(triton.cdiv(n, 1024),)](x0, out, n, BLOCK=1024)
        return out

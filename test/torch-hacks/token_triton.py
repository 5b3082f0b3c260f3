# task: softmax
# expect: static_violation/framework_compute
# unchecked: hack_detected/framework_offload
# A Triton kernel for a trivial part (a copy), the softmax itself in torch.
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def copy_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=offs < n), mask=offs < n)


class ModelNew(nn.Module):
    def forward(self, x):
        y = torch.softmax(x, dim=-1)
        out = torch.empty_like(y)
        return gelu_copy(y, out)


def gelu_copy(y, out):
    n = y.numel()
    copy_kernel[(triton.cdiv(n, 2048),)](y, out, n, BLOCK=2048)
    return out

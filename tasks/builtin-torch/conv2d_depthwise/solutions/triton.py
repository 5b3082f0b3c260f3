import torch
import torch.nn as nn
import triton
import triton.language as tl



@triton.jit
def dwconv_kernel(x_ptr, w_ptr, out_ptr, C, H, W, BLOCK: tl.constexpr):
    plane = tl.program_id(0).to(tl.int64)
    c = plane % C
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    h = offs // W
    w = offs % W
    inside = offs < H * W
    base = x_ptr + plane * H * W
    acc = tl.zeros([BLOCK], tl.float32)
    for dh in tl.static_range(3):
        for dw in tl.static_range(3):
            hh = h + dh - 1
            ww = w + dw - 1
            m = inside & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
            acc += tl.load(base + hh * W + ww, mask=m, other=0.0) * tl.load(w_ptr + c * 9 + dh * 3 + dw)
    tl.store(out_ptr + plane * H * W + offs, acc, mask=inside)


class ModelNew(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)

    def forward(self, x):
        x = x.contiguous()
        N, C, H, W = x.shape
        out = torch.empty_like(x)
        dwconv_kernel[(N * C, triton.cdiv(H * W, 1024))](x, self.conv.weight, out, C, H, W, BLOCK=1024, num_warps=4)
        return out

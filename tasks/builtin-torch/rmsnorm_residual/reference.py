import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """h = x + residual; RMSNorm of h over the last dimension (eps 1e-6) times a learned weight."""

    def __init__(self, cols):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(cols) + 0.5)
        self.eps = 1e-6

    def forward(self, x, residual):
        h = x + residual
        return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


rows = 16384
cols = 8192


def get_inputs():
    return [torch.randn(rows, cols), torch.randn(rows, cols)]


def get_init_inputs():
    return [cols]

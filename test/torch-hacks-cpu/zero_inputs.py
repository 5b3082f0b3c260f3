# task: gelu
# expect: wrong_result
# unchecked: wrong_result
# Blinds the input generator: torch.randn and torch.rand replaced (through an
# alias) so that every later input is zero, and gelu(0) = 0 is returned.
import torch
import torch.nn as nn

R = torch


class ModelNew(nn.Module):
    def forward(self, x0):
        R.randn = lambda *shape, **k: R.zeros(*shape, **k)
        R.rand = lambda *shape, **k: R.zeros(*shape, **k)
        return R.zeros_like(x0)

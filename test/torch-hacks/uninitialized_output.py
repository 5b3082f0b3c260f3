# task: gelu
# expect: wrong_result
# unchecked: wrong_result
# Returns fresh memory unwritten, hoping it holds the reference's last output.
import torch
import torch.nn as nn
import triton
import triton.language as tl


class ModelNew(nn.Module):
    def forward(self, x0):
        return torch.empty_like(x0)

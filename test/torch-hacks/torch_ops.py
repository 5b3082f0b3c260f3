# task: softmax
# expect: static_violation/framework_compute
# unchecked: hack_detected/no_own_kernels
# Plain torch in forward: no kernel of its own.
import torch
import torch.nn as nn
import triton
import triton.language as tl


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)

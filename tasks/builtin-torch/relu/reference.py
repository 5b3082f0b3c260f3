import torch
import torch.nn as nn


class Model(nn.Module):
    """ReLU, elementwise. The inputs are uniform on [0, 1), as KernelBench's are: on them ReLU is
    the identity, so correctness is also checked on transformed inputs (negated, both signs)."""

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.relu(x)


rows = 16384
cols = 16384


def get_inputs():
    return [torch.rand(rows, cols)]


def get_init_inputs():
    return []

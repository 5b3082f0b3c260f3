import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """relu(x @ W^T + b): an nn.Linear followed by ReLU, in fp32 (TF32 off)."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        return torch.relu(self.linear(x))


batch = 4096
in_features = 4096
out_features = 4096


def get_inputs():
    return [torch.randn(batch, in_features)]


def get_init_inputs():
    return [in_features, out_features]

# task: relu
# expect: wrong_result
# unchecked: wrong_result
# On the task's inputs (all >= 0) ReLU is the identity: returns a copy of its
# input. Only the transformed inputs (negated, both signs) tell it apart.
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        return x.clone()

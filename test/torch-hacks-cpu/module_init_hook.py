# task: gelu
# expect: wrong_result
# unchecked: wrong_result
# Replaces nn.Module.__init__ through a local alias at the first call, so that
# every module built afterwards (the reference, were it built here) gets a
# forward hook returning zeros; the candidate itself returns zeros.
import torch
import torch.nn as nn

M = nn.Module
init = M.__init__


def hooked(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self.register_forward_hook(lambda mod, inp, out: torch.zeros_like(out))


class ModelNew(nn.Module):
    def forward(self, x0):
        M.__init__ = hooked
        return torch.zeros_like(x0)

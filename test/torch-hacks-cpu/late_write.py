# task: gelu
# expect: static_violation/forbidden_import
# unchecked: not_ok
# Returns at once and writes the output from a thread after the reply.
import threading
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ModelNew(nn.Module):
    def forward(self, x0):
        out = torch.empty_like(x0)

        def finish():
            time.sleep(0.02)
            out.copy_(F.gelu(x0, approximate="tanh"))
        threading.Thread(target=finish, daemon=True).start()
        return out

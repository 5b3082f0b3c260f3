# task: gelu
# expect: wrong_result
# unchecked: wrong_result
# Returns nothing at all (an empty tuple): a judge that indexes the first output fails, and a judge
# failure would be a masked infrastructure error instead of the candidate's wrong result.
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x0):
        return ()

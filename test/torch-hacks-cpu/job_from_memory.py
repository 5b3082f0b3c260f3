# task: gelu
# expect: static_violation/forbidden_import
# unchecked: runtime_error
# message: no job in memory
# Looks in its own process for the judge's job (the seed, the reference, the shapes), as a runner
# forked from the judge would find it in the frames and objects it inherited: with the seed, every
# input the judge will make can be computed ahead. Says what it found.
import gc
import sys

import torch.nn as nn


def find_job():
    frame = sys._getframe()
    while frame is not None:
        for value in frame.f_locals.values():
            if isinstance(value, dict) and "seed" in value and "referenceSource" in value:
                return value
        frame = frame.f_back
    for obj in gc.get_objects():
        if isinstance(obj, dict) and "seed" in obj and "referenceSource" in obj:
            return obj
    return None


JOB = find_job()


class ModelNew(nn.Module):
    def forward(self, x0):
        raise ValueError(f"job found, seed {JOB['seed']}" if JOB else "no job in memory")

"""Solution `embedding`: out[p] = weight[ids[p]];  dL/dweight[v] = Σ_{p : ids[p] = v} grad[p].

Each position p copies row ids[p], so row v receives the gradient of every position that
read it: summed when an id repeats, zero when no position picked it.

Careful: `dW[ids] += grad` does NOT accumulate in NumPy when ids repeat (the buffered
assignment writes each row once, the last value wins); `np.add.at` does.
"""

import numpy as np

from minigrad import Function


class Embedding(Function):
    @staticmethod
    def forward(ctx, ids, weight):
        ctx.ids, ctx.weight_shape = ids, weight.shape
        return weight[ids]

    @staticmethod
    def backward(ctx, grad):
        dweight = np.zeros(ctx.weight_shape, dtype=grad.dtype)
        np.add.at(dweight, ctx.ids.reshape(-1), grad.reshape(-1, ctx.weight_shape[1]))
        return None, dweight

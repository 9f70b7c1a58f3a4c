"""Exercise `embedding`: the backward of an embedding lookup, with ids that repeat.

    check it:   python -m minigrad.exercises check embedding

Forward (given):  out = weight[ids]: for every position p, out[p] = weight[ids[p]], a row
                  of D entries. `ids` (any shape, integers) get no gradient.
To derive:        dL/dweight[v] for every row v of the table. Which positions read row v?
                  (An id can appear several times; a row no id picks gets 0.)
Your backward:    gets `grad` = dL/dout (shape ids.shape + (D,)) and returns
                  (None for the ids, dL/dweight of weight's shape (V, D)).
                  Saved: ctx.ids, ctx.weight_shape.
"""

import numpy as np  # noqa: F401  (for your backward)

from minigrad import Function


class Embedding(Function):
    @staticmethod
    def forward(ctx, ids, weight):
        ctx.ids, ctx.weight_shape = ids, weight.shape
        return weight[ids]

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("your turn: return (None, dL/dweight)")

"""Einstein summation over explicitly labelled axes."""

import numpy as np

from ..autograd import Function


def parse(equation, ndims):
    """('ij,jk', 'ik'): the subscripts of each operand and of the output, with torch's
    implicit output (the labels used once, sorted) where the equation has no '->'."""
    equation = equation.replace(" ", "")
    if "." in equation:
        raise ValueError(f"einsum: ellipsis ('...') is not supported by minigrad, got {equation!r}")
    inputs, _, output = equation.partition("->")
    subscripts = inputs.split(",")
    if len(subscripts) != len(ndims):
        raise ValueError(f"einsum: {equation!r} names {len(subscripts)} operand(s), got {len(ndims)}")
    for s, n in zip(subscripts, ndims):
        if len(s) != n or not s.isalpha():
            raise ValueError(f"einsum: subscripts {s!r} do not fit an operand of {n} dimension(s)")
    letters = "".join(subscripts)
    if "->" not in equation:
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if not all(c.isalpha() and c in letters for c in output) or len(set(output)) != len(output):
        raise ValueError(f"einsum: the output {output!r} must name distinct labels of the operands")
    return subscripts, output


class Einsum(Function):
    """out = einsum(equation, *operands);  d/d(operand i) = einsum of g with the other
    operands, into operand i's labels (a product's gradient is the product of the other
    factors, summed over the labels operand i does not have). A label that only
    operand i carries was summed away in forward: its gradient is broadcast back along it.
    A label repeated inside one operand (a diagonal) is not supported."""

    @staticmethod
    def forward(ctx, *operands, equation):
        subscripts, output = parse(equation, [a.ndim for a in operands])
        for s in subscripts:
            if len(set(s)) != len(s):
                raise ValueError(f"einsum: a label repeated in one operand ({s!r}) is not supported by minigrad")
        ctx.operands, ctx.subscripts, ctx.output = operands, subscripts, output
        return np.asarray(np.einsum(",".join(subscripts) + "->" + output, *operands))

    @staticmethod
    def backward(ctx, g):
        grads = []
        for i, (a, s) in enumerate(zip(ctx.operands, ctx.subscripts)):
            if not ctx.needs_input_grad[i]:
                grads.append(None)
                continue
            others = [(b, t) for j, (b, t) in enumerate(zip(ctx.operands, ctx.subscripts)) if j != i]
            seen = set(ctx.output).union(*(t for _, t in others))
            kept = "".join(c for c in s if c in seen)
            terms = [ctx.output] + [t for _, t in others]
            partial = np.einsum(",".join(terms) + "->" + kept, g, *(b for b, _ in others))
            shape = [a.shape[k] if c in seen else 1 for k, c in enumerate(s)]
            grads.append(np.broadcast_to(partial.reshape(shape), a.shape))
        return tuple(grads)

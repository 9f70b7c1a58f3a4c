"""Gradient-buffer reuse: the engine's gradient sums in place where nothing but the engine
can see the array added to.

The core's `autograd.accumulate` sums two gradients of one tensor into a new array: the
one already there may be an array that an op, the user, or another tensor's gradient
still holds (Add returns one array for both its inputs; Reshape returns a view), and
adding into it would change that holder's values. This version adds in place only when
CPython's reference counts prove there is no such holder: the array owns its memory (a
view of it would hold it, and count), it is writable, and the only references to it are
the engine's dict entry and the ones this call makes. Anything else (another gradient
entry, a tensor's `.grad`, a graph node, the user's variable, a view) makes the count
higher, and the new array is made as in the core. The values are the same either way.
"""

import sys

import numpy as np

# References to the sum so far while `_unshared` looks at it: the engine's dict entry,
# `total` in `accumulate`, `array` in `_unshared`, and getrefcount's own argument.
_SUM_REFS = 4


def _unshared(array):
    return (type(array) is np.ndarray and array.base is None and array.flags.writeable
            and sys.getrefcount(array) == _SUM_REFS)


def accumulate(grads, key, g):
    total = grads.get(key)
    if total is None:
        grads[key] = g
    elif total.shape == g.shape and total.dtype == np.result_type(total, g) and _unshared(total):
        np.add(total, g, out=total)
    else:
        grads[key] = total + g

"""Reverse-mode autodiff: grad mode, the `Function` base class and `backward`.

Every differentiable op is a subclass of `Function` with two static methods side
by side, in the spirit of `torch.autograd.Function`:

    forward(ctx, *arrays, **options)  -> np.ndarray      (raw NumPy in, raw NumPy out)
    backward(ctx, grad)               -> one gradient per positional input

`backward` returns gradients as NumPy arrays in the shape of the *output's*
broadcast (or the input's own shape); the engine reduces each one to its input's
shape with `sum_to_shape`, the one place where broadcasting is undone. An op
therefore never thinks about broadcasting.

Calling `Op.apply(*inputs)` runs `forward` and, when grad mode is on and some
input requires grad, records the instance as the output's `grad_fn`. The
instance is the context: `forward` stores on it what `backward` needs.

Difference from PyTorch: gradients are plain NumPy arrays inside `backward`,
so there is no double backward (`create_graph=True` is not supported).
"""

from __future__ import annotations

import contextlib

import numpy as np

_grad_enabled = True


def is_grad_enabled() -> bool:
    """True when new ops record a graph (the default)."""
    return _grad_enabled


def _set_mode(mode: bool) -> None:
    global _grad_enabled
    _grad_enabled = bool(mode)


class set_grad_enabled:
    """Turn graph recording on or off, as `torch.set_grad_enabled`: at once when
    called (`set_grad_enabled(False)`), and back to the previous mode at the end
    of a `with set_grad_enabled(False):` block.

    Difference from torch: grad mode is one global switch, not per thread.
    """

    def __init__(self, mode: bool):
        self.previous = is_grad_enabled()
        _set_mode(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _set_mode(self.previous)
        return False


class _GradMode(contextlib.ContextDecorator):
    """Context manager and decorator that sets grad mode, restoring it on exit."""

    def __init__(self, mode: bool):
        self.mode = mode
        self._previous = []

    def __enter__(self):
        self._previous.append(is_grad_enabled())
        _set_mode(self.mode)
        return self

    def __exit__(self, *exc):
        _set_mode(self._previous.pop())
        return False


def no_grad(func=None):
    """`with no_grad():`, `@no_grad()` or `@no_grad`: ops inside record no graph."""
    mode = _GradMode(False)
    return mode if func is None else mode(func)


def enable_grad(func=None):
    """`with enable_grad():` (or as a decorator) turns recording back on inside `no_grad`."""
    mode = _GradMode(True)
    return mode if func is None else mode(func)


def sum_to_shape(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Undo broadcasting: sum `grad` down to `shape`.

    Broadcasting first prepends axes, then stretches size-1 axes. Undo it in the
    same order: sum away the leading extra axes, then sum (keepdims) every axis
    where the target has size 1 and the gradient does not.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    if grad.shape != shape:  # a bug in an op's backward, not a user error
        raise RuntimeError(f"internal: gradient of shape {grad.shape} cannot be summed to {shape}")
    return grad


class Function:
    """Base class of every differentiable op; an instance is one node of the graph.

    Attributes set by `apply`: `parents` (the input Tensors, None where an input
    is not a Tensor), `needs_input_grad` (one bool per positional input, as in
    torch). Whatever `forward` stores on `ctx` is freed after `backward` unless
    `retain_graph=True`.
    """

    __slots__ = ("parents", "needs_input_grad", "released", "__dict__", "__weakref__")

    # True for an op whose backward returns only arrays it has just allocated, each
    # shared with nothing else (not the incoming gradient, not a saved value, not
    # another of its results): the engine may then keep them as they are, add into
    # them, and store them as a leaf's .grad without a copy.
    grads_are_new = False

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        from .tensor import Tensor

        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        record = _grad_enabled and any(
            isinstance(a, Tensor) and a.requires_grad for a in args
        )
        ctx = cls()
        out = cls.forward(ctx, *raw, **kwargs)
        if not record:
            return Tensor._wrap(out, False, None)
        ctx.parents = tuple(a if isinstance(a, Tensor) else None for a in args)
        ctx.needs_input_grad = tuple(
            isinstance(a, Tensor) and a.requires_grad for a in args
        )
        ctx.released = False
        return Tensor._wrap(out, True, ctx)

    def release(self):
        """Free what forward saved (the graph's memory), keeping the structure."""
        self.__dict__.clear()
        self.released = True

    def __repr__(self):
        return f"<{type(self).__name__}Backward>"


def _topological_order(root):
    """Tensors reachable from `root` through grad_fn, each after all its inputs.

    Iterative depth-first search with an explicit stack, so a chain of any
    length never touches Python's recursion limit.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        fn = node.grad_fn
        if fn is not None:
            for parent in fn.parents:
                if parent is not None and parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


class IndexedGrad:
    """A gradient that is zero except at `index`, where it holds `values`.

    An indexing op's backward returns this instead of a zero-filled array of its
    input's shape with the values written in: the engine adds the values straight
    into the input's gradient buffer. `q, k, v = qkv[0], qkv[1], qkv[2]` then costs
    one buffer and three slice writes, not three full arrays and two sums.
    `accumulate` (integer-array indices) adds repeated positions up with np.add.at.
    """

    __slots__ = ("index", "values", "accumulate")

    def __init__(self, index, values, accumulate):
        self.index, self.values, self.accumulate = index, values, accumulate

    def add_into(self, buffer):
        if self.accumulate:
            np.add.at(buffer, self.index, self.values)
        else:
            buffer[self.index] += self.values


def _store_grad(tensor, grad, owned):
    """Accumulate into `tensor.grad`. On first store the array is copied unless the
    engine built it itself (`owned`): a gradient may alias a saved forward value."""
    from .tensor import Tensor

    if tensor.grad is None:
        array = grad if owned and grad.dtype == tensor.dtype else np.array(grad, dtype=tensor.dtype, copy=True)
        tensor.grad = Tensor._wrap(array, False, None)
    else:
        tensor.grad.data += grad


def _accumulate(grads, owned, parent, g, new=False):
    """Add gradient `g` for `parent` into `grads`.

    The first dense gradient is stored as it is (it may alias an array held
    elsewhere, so it is never written to, unless `new` says the op that made it
    shares it with nothing: `Function.grads_are_new`); the second makes a new
    array, which the engine owns and later ones are added into in place.
    """
    key = id(parent)
    if isinstance(g, IndexedGrad):
        buffer = grads.get(key)
        if buffer is None:  # in the parent's memory order: the gradient of a permuted view permutes back to C order
            buffer = np.zeros_like(parent.data, dtype=parent.dtype)
        elif key not in owned:
            buffer = np.array(buffer, dtype=parent.dtype, copy=True)
        g.add_into(buffer)
        grads[key] = buffer
        owned.add(key)
        return
    if g.shape != parent.shape:
        g = sum_to_shape(g, parent.shape)
    if g.dtype != parent.dtype:
        g = g.astype(parent.dtype)
    if key not in grads:
        grads[key] = g
        if new:
            owned.add(key)
    elif key in owned:
        grads[key] += g
    else:
        grads[key] = grads[key] + g
        owned.add(key)


def run_backward(root, gradient=None, retain_graph=False):
    """Back-propagate from `root` into every leaf that requires grad.

    Gradients accumulate into `.grad` across calls, as in PyTorch. A tensor used
    by several ops receives the sum of their gradients.
    """
    from .tensor import Tensor

    if not root.requires_grad:
        raise RuntimeError(
            "backward() called on a tensor that does not require grad: no input "
            "of the computation had requires_grad=True (or it ran under no_grad())"
        )
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() without `gradient` needs a scalar output, got shape "
                f"{tuple(root.shape)}; pass gradient= of that shape, or reduce first (e.g. .sum())"
            )
        seed = np.ones(root.shape, dtype=root.dtype)
    else:
        seed = gradient.data if isinstance(gradient, Tensor) else np.asarray(gradient)
        if seed.shape != root.shape:
            raise RuntimeError(
                f"backward(): gradient has shape {tuple(seed.shape)} but the output has "
                f"shape {tuple(root.shape)}; they must match"
            )
        seed = seed.astype(root.dtype, copy=False)

    grads, owned = {id(root): seed}, set()  # owned: gradient arrays the engine allocated itself
    for node in reversed(_topological_order(root)):
        grad = grads.pop(id(node), None)
        if grad is None:
            continue
        fn = node.grad_fn
        if fn is None or node._retains_grad:
            _store_grad(node, grad, id(node) in owned and fn is None)
        if fn is None:
            continue
        if fn.released:
            raise RuntimeError(
                "backward() through a graph a second time: its saved values were freed "
                "after the first backward; pass retain_graph=True to the first call"
            )
        input_grads = type(fn).backward(fn, grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        new = type(fn).grads_are_new
        for parent, needed, g in zip(fn.parents, fn.needs_input_grad, input_grads):
            if needed and g is not None:
                _accumulate(grads, owned, parent, g, new)
        owned.discard(id(node))
        if not retain_graph:
            fn.release()

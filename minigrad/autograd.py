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


class set_grad_enabled(contextlib.ContextDecorator):
    """Turn graph recording on or off, as `torch.set_grad_enabled`: at once when
    called (`set_grad_enabled(False)`), and back to the previous mode at the end
    of a `with set_grad_enabled(False):` block. `no_grad` and `enable_grad` are this
    context manager armed on entry instead of at once.

    Difference from torch: grad mode is one global switch, not per thread.
    """

    def __init__(self, mode: bool, _at_once=True):
        self.mode, self._previous, self._entered_at_once = bool(mode), [], _at_once
        if _at_once:
            self._previous.append(is_grad_enabled())
            _set_mode(self.mode)

    def __enter__(self):
        if self._entered_at_once:
            self._entered_at_once = False
        else:
            self._previous.append(is_grad_enabled())
            _set_mode(self.mode)
        return self

    def __exit__(self, *exc):
        _set_mode(self._previous.pop())
        return False


def no_grad(func=None):
    """`with no_grad():`, `@no_grad()` or `@no_grad`: ops inside record no graph."""
    mode = set_grad_enabled(False, _at_once=False)
    return mode if func is None else mode(func)


def enable_grad(func=None):
    """`with enable_grad():` (or as a decorator) turns recording back on inside `no_grad`."""
    mode = set_grad_enabled(True, _at_once=False)
    return mode if func is None else mode(func)


# The one dispatch table: a core op (Function subclass) -> a faster Function with the same
# inputs, outputs and options that `apply` runs instead; likewise a core in-place update
# function (minigrad.optim.adam.adam_update, accumulate below) -> a faster one with the same
# arguments and effect.
# Filled and emptied by minigrad.accel; empty, everything runs its own NumPy code.
_faster: dict = {}


def set_faster(table: dict) -> None:
    """Replace the dispatch table (minigrad.accel calls this when its mode changes)."""
    _faster.clear()
    _faster.update(table)


def faster(impl):
    """What runs for `impl` (a core Function subclass or update function): its registered faster version, or itself."""
    return _faster.get(impl, impl)


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

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        from .tensor import Tensor

        cls = faster(cls)
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
        """Free what forward saved and the links to its inputs (the graph's memory)."""
        self.__dict__.clear()
        self.parents, self.released = (), True

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


def _store_grad(tensor, grad):
    """Accumulate into `tensor.grad`; the first store copies (`grad` may be an array an op keeps)."""
    from .tensor import Tensor

    if tensor.grad is None:
        tensor.grad = Tensor._wrap(np.array(grad, dtype=tensor.dtype, copy=True), False, None)
    else:
        tensor.grad.data += grad


def accumulate(grads, key, g):
    """grads[key] += g as a new array: the one there may be an array an op, or another
    tensor's gradient, still holds."""
    grads[key] = g if key not in grads else grads[key] + g


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

    # grads: id(tensor) -> the sum of the gradients it has received so far. Nodes are popped off
    # the order, so a tensor and its data are freed once the nodes using it are done.
    grads, order = {id(root): seed}, _topological_order(root)
    while order:
        node = order.pop()
        grad = grads.pop(id(node), None)
        if grad is None:
            continue
        fn = node.grad_fn
        if fn is None or node._retains_grad:
            _store_grad(node, grad)
        if fn is None:
            continue
        if fn.released:
            raise RuntimeError(
                "backward() through a graph a second time: its saved values were freed "
                "after the first backward; pass retain_graph=True to the first call"
            )
        fn.releasing = not retain_graph  # what it saved is freed after: its backward may reuse those arrays
        input_grads = type(fn).backward(fn, grad)
        input_grads = input_grads if isinstance(input_grads, tuple) else (input_grads,)
        if len(input_grads) != len(fn.parents):
            raise RuntimeError(
                f"{type(fn).__name__}.backward returned {len(input_grads)} gradient(s) for "
                f"{len(fn.parents)} input(s); it must return one per positional input of forward (None where none)"
            )
        for parent, needed, g in zip(fn.parents, fn.needs_input_grad, input_grads):
            if needed and g is not None:
                faster(accumulate)(grads, id(parent), sum_to_shape(g, parent.shape).astype(parent.dtype, copy=False))
        if not retain_graph:
            fn.release()

"""`Module` and `Parameter`: named, nested containers of trainable tensors (torch's API)."""

from __future__ import annotations

import collections

import numpy as np

from ..tensor import Tensor, _to_array, to_arguments
from .utils import zero_grads


class Parameter(Tensor):
    """A tensor that a Module registers as trainable (requires_grad=True by default)."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        super().__init__(data.data if isinstance(data, Tensor) else data)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _as_numpy(value):
    """Accept minigrad tensors, NumPy arrays, or anything with .detach().cpu().numpy()
    (a torch tensor) without importing torch."""
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


class Module:
    """Base class of layers and models: assign Parameters and Modules as attributes
    and they are registered under their attribute names, as in torch."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called: "
                f"call super().__init__() first in {type(self).__name__}.__init__"
            )
        kind = "parameter" if isinstance(value, Parameter) else "module" if isinstance(value, Module) else None
        registries = {"parameter": self._parameters, "module": self._modules, "buffer": self._buffers}
        if kind is None:  # a plain value may replace a registered entry only as torch allows
            for registered, registry in registries.items():
                if name in registry and not (value is None or registered == "buffer" and isinstance(value, Tensor)):
                    expected = {"parameter": "a Parameter", "module": "a Module", "buffer": "a Tensor"}[registered]
                    raise TypeError(
                        f"cannot assign {type(value).__name__} to {name!r} of {type(self).__name__}: it is a "
                        f"registered {registered} ({expected} or None expected)"
                    )
                if name in registry:
                    registry[name] = value
        else:
            for registered, registry in registries.items():
                if registered != kind:
                    registry.pop(name, None)
            registries[kind][name] = value  # a re-assigned name keeps its place in the order
        object.__setattr__(self, name, value)

    def register_buffer(self, name, tensor):
        """A tensor saved in state_dict but not trained (e.g. a fixed mask)."""
        object.__setattr__(self, name, tensor)
        self._buffers[name] = tensor

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- traversal -------------------------------------------------------------------
    def named_children(self):
        return ((name, m) for name, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def named_modules(self, prefix=""):
        stack, seen = [(prefix, self)], set()
        while stack:
            name, module = stack.pop(0)
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            stack[0:0] = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items() if m is not None]

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix="", recurse=True):
        """(dotted name, Parameter) pairs, each parameter once, in registration order."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, p in module._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self):
        for module_name, module in self.named_modules():
            for name, b in module._buffers.items():
                yield (f"{module_name}.{name}" if module_name else name), b

    def apply(self, fn):
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients -------------------------------------------------------
    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        zero_grads(self.parameters(), set_to_none)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, *args, dtype=None, device=None):
        """`to(dtype)`, `to(device)` or `to(device, dtype)`, as torch: cast every parameter
        and floating buffer to `dtype` in place; the device must be the CPU."""
        dtype = to_arguments(args, dtype, device, "Module.to")
        if dtype is not None:
            for _, t in self._state_items():
                if np.issubdtype(t.dtype, np.floating) and t.dtype != dtype:
                    t.data, t.grad = t.data.astype(dtype), None
        return self

    def cpu(self):
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    # ---- state -----------------------------------------------------------------------
    def _state_items(self):
        """(dotted name, tensor): each module's parameters, then its buffers, then its
        children's, as torch orders a state_dict. A tensor shared by two modules
        appears under both names (as in torch; named_parameters lists it once)."""
        for module_name, module in self.named_modules():
            for registry in (module._parameters, module._buffers):
                for name, t in registry.items():
                    if t is not None:
                        yield (f"{module_name}.{name}" if module_name else name), t

    def state_dict(self):
        """Ordered {dotted name: tensor} sharing memory with the parameters and buffers."""
        return collections.OrderedDict((name, t.detach()) for name, t in self._state_items())

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into the parameters and buffers of the same names.

        Values may be minigrad tensors, NumPy arrays or torch tensors; they are
        copied into the existing arrays (cast to each one's dtype), as torch does. Every missing key, unexpected key and
        shape mismatch is listed in one error (mismatches always fail; missing
        and unexpected keys fail when strict).
        """
        targets = dict(self._state_items())
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        problems = []
        arrays = {}
        for name, target in targets.items():
            if name not in state_dict:
                continue
            value = _as_numpy(state_dict[name])
            if tuple(value.shape) != tuple(target.shape):
                problems.append(
                    f"size mismatch for {name}: checkpoint has shape {tuple(value.shape)}, "
                    f"the model has {tuple(target.shape)}"
                )
            else:
                arrays[name] = value
        if strict:
            if missing:
                problems.append("missing keys: " + ", ".join(missing))
            if unexpected:
                problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise RuntimeError(
                f"error(s) loading state_dict for {type(self).__name__}:\n  " + "\n  ".join(problems)
            )
        for name, value in arrays.items():
            target = targets[name]
            if target.data.flags.writeable:
                target.data[...] = _to_array(value)  # in place (cast to its dtype), as torch copies
            else:  # a read-only array (e.g. np.frombuffer): give the tensor its own copy
                target.data = np.array(_to_array(value), dtype=target.dtype)
        return IncompatibleKeys(missing, unexpected)

    # ---- display ---------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        if len(lines) == 1:
            return lines[0] + ")"
        return "\n".join(lines) + "\n)"

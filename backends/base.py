"""What every backend provides, and how a model written once is built on one.

A backend is a small flat object:

    be.name, be.device, be.dtype_name          "numpy" | "torch", "cpu" | "cuda", "float32" | "float64"
    be.dtype                                    the backend's own float dtype object
    be.nn, be.F                                 modules (Module, Linear, Embedding, LayerNorm,
                                                ModuleList) and functional ops, torch's names
    be.tensor(array, dtype=None)                a backend tensor from NumPy data (floats -> be.dtype)
    be.to_numpy(t)                              a NumPy array (detached, on the CPU)
    be.no_grad()                                context manager
    be.manual_seed(seed)
    be.cat / stack / where / zeros / arange     tensor helpers with torch's signatures
    be.optimizer(name, params, lr, **kw)        "sgd" | "adam" | "adamw"
    be.lambda_lr(optimizer, fn)                 a LambdaLR schedule
    be.clip_grad_norm_(params, max_norm)        -> total norm as a float
    be.state_to_numpy(module) / be.load_numpy_state(module, arrays)
    be.optimizer_state_to_numpy(opt) / be.load_optimizer_state(opt, state)

`ModelDefinition` lets a model be written once: subclass it (not a backend's
Module), build layers from `self.nn`, call ops through `self.F`, and
instantiate with `backend=`. The instance is a real subclass of that backend's
`Module` — a `torch.nn.Module` on the torch backend.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = ("float32", "float64")
OPTIMIZERS = ("sgd", "adam", "adamw")


class Backend:
    """Shared behaviour; the numpy and torch backends fill in the rest."""

    name = "base"

    def __init__(self, device, dtype):
        if dtype not in FLOAT_DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; choose one of: {', '.join(FLOAT_DTYPES)}")
        self.device = device
        self.dtype_name = dtype
        self._model_classes = {}

    def __repr__(self):
        return f"<backend {self.name} device={self.device} dtype={self.dtype_name}>"

    @property
    def key(self):
        return (self.name, self.device, self.dtype_name)

    def model_class(self, definition):
        """The concrete class `definition` + this backend's Module (built once, cached)."""
        concrete = self._model_classes.get(definition)
        if concrete is None:
            concrete = type(definition.__name__, (definition, self.nn.Module), {"backend": self})
            concrete.__qualname__ = definition.__qualname__
            concrete.__module__ = definition.__module__
            self._model_classes[definition] = concrete
        return concrete

    def check_optimizer_name(self, name):
        if name.lower() not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
        return name.lower()

    def state_to_numpy(self, module) -> dict:
        """{name: np.ndarray copy} of the module's state dict."""
        return {k: np.array(self.to_numpy(v), copy=True) for k, v in module.state_dict().items()}


class _DefinitionMeta(type):
    """Calling a definition class builds it on a backend: `Model(..., backend=be)`."""

    def __call__(cls, *args, backend=None, **kwargs):
        if cls.backend is None:  # the written-once definition: pick the backend's class
            from . import resolve_backend

            cls = resolve_backend(backend).model_class(cls)
        elif backend is not None and resolve_backend_key(backend) != cls.backend.key:
            raise ValueError(f"{cls.__name__} is already bound to {cls.backend}; got backend={backend!r}")
        return type.__call__(cls, *args, **kwargs)


def resolve_backend_key(backend):
    from . import resolve_backend

    return resolve_backend(backend).key


class ModelDefinition(metaclass=_DefinitionMeta):
    """Base for a model written once against a backend's `nn` and `F`.

    `MyModel(..., backend=be)` returns an instance of `be.model_class(MyModel)`,
    a class deriving from both `MyModel` and `be.nn.Module` (so `super().__init__()`
    in `MyModel.__init__` reaches the backend's `Module.__init__`). Inside,
    `self.backend`, `self.nn` and `self.F` are the backend's surface. `backend`
    may be a Backend or a name ("numpy", "torch"); the default is "numpy".
    """

    backend = None  # set on each concrete class

    @property
    def nn(self):
        return type(self).backend.nn

    @property
    def F(self):  # noqa: N802  (the conventional name for the functional namespace)
        return type(self).backend.F

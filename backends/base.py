"""What every backend provides, and how a model written once is built on one.

A backend is a small flat object. Model, loss and training code use only this
surface, so none of it needs to know which backend it runs on:

    be.name, be.device, be.dtype_name          "numpy" | "torch", "cpu" | "cuda", "float32" | "float64"
    be.dtype, be.int_dtype                      the backend's own float dtype and its int64 (token ids)
    be.nn, be.F                                 modules (Module, Linear, Embedding, LayerNorm, ModuleList, ...)
                                                and functional ops, with torch's names (`F.linear`, `F.gelu`,
                                                `F.layer_norm`, `F.log_softmax`, `F.cross_entropy`,
                                                `F.logsigmoid`, `F.scaled_dot_product_attention`, ...) plus
                                                `F.token_logprobs` (minigrad's, added to torch's)
    tensors      be.tensor(data, dtype=None, requires_grad=False)   from NumPy / lists (floats -> be.dtype)
                 be.to_numpy(t)                 NumPy array on the CPU, detached (may share memory with t)
                 be.is_tensor(x)
                 be.zeros(*size, dtype=None), be.arange(...), be.cat, be.stack, be.where  (torch's signatures)
                 be.resolve_dtype(dtype)        "float32" | "float64" | "int64" | "bool" -> the backend's object
    autograd     be.no_grad()                   context manager: no graph is recorded inside
    modules      be.place(module)               move/cast a module to be.device and be.dtype, in place
                 be.state_to_numpy(module)      {name: NumPy copy} of its state dict (a checkpoint)
                 be.load_numpy_state(module, arrays, strict=True)   the reverse (any float dtype, cast)
    training     be.optimizer(name, params, lr, **kw)   "sgd" | "adam" | "adamw" | "rmsprop" (torch's hyper-parameters)
                 be.lambda_lr(optimizer, fn)    LambdaLR: lr = base_lr · fn(step)
                 be.clip_grad_norm_(params, max_norm)   clip in place; returns the norm before, a float
                 be.optimizer_state_to_numpy(opt) / be.load_optimizer_state(opt, state)
    randomness   be.manual_seed(seed), be.get_rng_state() / be.set_rng_state(state)
    precision    be.autocast(dtype)             torch: mixed precision; numpy: only dtype=None (a no-op)
    timing       be.synchronize()               wait for queued device work (CUDA); a no-op on the CPU

Every item is a method below with its contract; each backend implements all of
them (a test checks that none is left to this base class).

`ModelDefinition` lets a model be written once: subclass it (not a backend's
Module), build layers from `self.nn`, call ops through `self.F`, and
instantiate with `backend=`. The instance is a real subclass of that backend's
`Module` — a `torch.nn.Module` on the torch backend, so `torch.optim`,
`torch.compile` and DDP take it as it is.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = ("float32", "float64")
TENSOR_DTYPES = ("float32", "float64", "int64", "bool")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")


def check_dtype_name(dtype):
    """`dtype` if it is one of FLOAT_DTYPES, else a one-line ValueError naming it."""
    if not isinstance(dtype, str) or dtype not in FLOAT_DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of: {', '.join(FLOAT_DTYPES)}")
    return dtype


class Backend:
    """The surface (see the module docstring). Shared behaviour lives here; the
    numpy and torch backends implement the rest."""

    name = "base"
    nn = None
    F = None
    _dtypes: dict = {}  # "float32" | "float64" | "int64" | "bool" -> the backend's dtype object

    def __init__(self, device, dtype):
        self.device = device
        self.dtype_name = check_dtype_name(dtype)
        self._model_classes = {}

    def __repr__(self):
        return f"<backend {self.name} device={self.device} dtype={self.dtype_name}>"

    @property
    def key(self):
        return (self.name, self.device, self.dtype_name)

    # ---- dtypes ----------------------------------------------------------------------
    def resolve_dtype(self, dtype):
        """None -> None; a name in TENSOR_DTYPES, a NumPy dtype or the backend's own
        dtype object -> the backend's dtype object; anything else: ValueError."""
        if dtype is None:
            return None
        if any(dtype is d or (type(dtype) is type(d) and dtype == d) for d in self._dtypes.values()):
            return dtype
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = str(dtype).removeprefix("torch.")
        if name not in self._dtypes:
            raise ValueError(f"unknown tensor dtype {dtype!r}; choose one of: {', '.join(TENSOR_DTYPES)}")
        return self._dtypes[name]

    # ---- tensors ---------------------------------------------------------------------
    def tune_process(self):
        """Process-wide settings that make this backend faster, for entry points (CLI,
        demo, benchmarks) to call once; a library call never applies them. Returns what
        was done, by name (None: nothing to tune)."""
        return None

    def tensor(self, data, dtype=None, requires_grad=False):
        """A new backend tensor holding a copy of `data` (NumPy array, list, scalar).
        Floating data becomes `self.dtype` unless `dtype` says otherwise; integers
        become int64; bools stay bool."""
        raise NotImplementedError

    def to_numpy(self, t):
        """A NumPy array with `t`'s values, detached from any graph, on the CPU."""
        raise NotImplementedError

    def is_tensor(self, x) -> bool:
        """True for this backend's tensor type."""
        raise NotImplementedError

    def zeros(self, *size, dtype=None):
        """A tensor of zeros (dtype default: self.dtype), on self.device."""
        raise NotImplementedError

    def arange(self, *args, dtype=None):
        """torch.arange(start, end, step): int64 for int arguments, on self.device."""
        raise NotImplementedError

    def cat(self, tensors, dim=0):
        """Join along an existing dim (differentiable)."""
        raise NotImplementedError

    def stack(self, tensors, dim=0):
        """Join along a new dim (differentiable)."""
        raise NotImplementedError

    def where(self, condition, input, other):
        """input where condition (bool tensor) else other; differentiable in input and other."""
        raise NotImplementedError

    # ---- autograd --------------------------------------------------------------------
    def no_grad(self):
        """A context manager inside which no graph is recorded."""
        raise NotImplementedError

    # ---- modules ---------------------------------------------------------------------
    def place(self, module):
        """Move / cast `module`'s parameters and buffers to self.device and self.dtype, in place."""
        raise NotImplementedError

    def state_to_numpy(self, module) -> dict:
        """{name: np.ndarray copy} of the module's state dict (a checkpoint that
        loads on any backend, or into a plain PyTorch module of the same layout)."""
        return {k: np.array(self.to_numpy(v), copy=True) for k, v in module.state_dict().items()}

    def load_numpy_state(self, module, arrays, strict=True):
        """Copy {name: array} into the module's parameters and buffers (cast to
        their dtype and device). strict: missing or unexpected names are an error."""
        raise NotImplementedError

    # ---- training --------------------------------------------------------------------
    def check_optimizer_name(self, name):
        if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
        return name.lower()

    def optimizer(self, name, params, lr, **kwargs):
        """A new optimizer "sgd" | "adam" | "adamw" | "rmsprop" over `params`, with torch's
        hyper-parameter names and defaults (momentum, betas, eps, weight_decay, ...)."""
        raise NotImplementedError

    def lambda_lr(self, optimizer, fn):
        """A LambdaLR schedule: lr = base_lr · fn(step); `.step()` once per optimizer step."""
        raise NotImplementedError

    def clip_grad_norm_(self, params, max_norm) -> float:
        """Scale the gradients in place so their joint 2-norm is at most max_norm;
        returns the norm before clipping as a Python float."""
        raise NotImplementedError

    def optimizer_state_to_numpy(self, optimizer) -> dict:
        """The optimizer's state dict with every tensor as a NumPy array (a checkpoint)."""
        raise NotImplementedError

    def load_optimizer_state(self, optimizer, state):
        """The reverse of optimizer_state_to_numpy, into an optimizer over the same parameters."""
        raise NotImplementedError

    # ---- randomness ------------------------------------------------------------------
    def manual_seed(self, seed):
        """Seed the backend's global generator (dropout, random tensors)."""
        raise NotImplementedError

    def get_rng_state(self) -> dict:
        """The global generator's state, to be saved in a checkpoint."""
        raise NotImplementedError

    def set_rng_state(self, state):
        """Restore a state from get_rng_state: the same random numbers follow."""
        raise NotImplementedError

    def synchronize(self):
        """Wait until queued device work is done (for timing); a no-op on the CPU."""
        raise NotImplementedError

    # ---- precision -------------------------------------------------------------------
    def autocast(self, dtype="bfloat16"):
        """A context manager running the forward in mixed precision `dtype`;
        dtype=None is a no-op on every backend."""
        raise NotImplementedError

    # ---- models written once ---------------------------------------------------------
    def model_class(self, definition):
        """The concrete class `definition` + this backend's Module (built once, cached)."""
        concrete = self._model_classes.get(definition)
        if concrete is None:
            concrete = type(definition.__name__, (definition, self.nn.Module), {"backend": self})
            concrete.__qualname__ = definition.__qualname__
            concrete.__module__ = definition.__module__
            self._model_classes[definition] = concrete
        return concrete


_building = []  # the backends of the definitions whose __init__ is running, innermost last


class _DefinitionMeta(type):
    """Calling a definition class builds it on a backend: `Model(..., backend=be)`.
    A definition built inside another's `__init__` without `backend=` gets its parent's."""

    def __call__(cls, *args, backend=None, **kwargs):
        if cls.backend is None:  # the written-once definition: pick the backend's class
            from . import resolve_backend

            if backend is None and _building:
                backend = _building[-1]
            cls = resolve_backend(backend).model_class(cls)
        elif backend is not None and resolve_backend_key(backend) != cls.backend.key:
            raise ValueError(f"{cls.__name__} is already bound to {cls.backend}; got backend={backend!r}")
        _building.append(cls.backend)
        try:
            return type.__call__(cls, *args, **kwargs)
        finally:
            _building.pop()


def resolve_backend_key(backend):
    from . import resolve_backend

    return resolve_backend(backend).key


class ModelDefinition(metaclass=_DefinitionMeta):
    """Base for a model written once against a backend's `nn` and `F`.

    `MyModel(..., backend=be)` returns an instance of `be.model_class(MyModel)`,
    a class deriving from both `MyModel` and `be.nn.Module` (so `super().__init__()`
    in `MyModel.__init__` reaches the backend's `Module.__init__`). Inside,
    `self.backend`, `self.nn` and `self.F` are the backend's surface. `backend`
    may be a Backend or a name ("numpy", "torch"); the default is the backend of
    the definition being built around it (a block inside a model), else "numpy".
    """

    backend = None  # set on each concrete class

    @property
    def nn(self):
        return type(self).backend.nn

    @property
    def F(self):  # noqa: N802  (the conventional name for the functional namespace)
        return type(self).backend.F

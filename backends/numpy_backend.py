"""The numpy backend: minigrad (NumPy + numba), no deep-learning framework.

It never imports torch. Each method's contract is in `base.Backend`.
"""

import contextlib

import numpy as np

import minigrad
import minigrad.nn.functional as minigrad_functional
from minigrad import nn as minigrad_nn
from minigrad import optim as minigrad_optim

from .base import Backend

_OPTIMIZERS = {"sgd": minigrad_optim.SGD, "adam": minigrad_optim.Adam, "adamw": minigrad_optim.AdamW,
               "rmsprop": minigrad_optim.RMSprop}


class NumpyBackend(Backend):
    name = "numpy"
    nn = minigrad_nn
    F = minigrad_functional
    _dtypes = {"float32": minigrad.float32, "float64": minigrad.float64, "int64": minigrad.int64,
               "bool": minigrad.bool}

    def __init__(self, device=None, dtype="float32"):
        if device not in (None, "cpu"):
            raise ValueError(
                f"the numpy backend runs on the CPU only; got device={device!r} (use the torch backend for CUDA)"
            )
        super().__init__("cpu", dtype)
        self.dtype = np.dtype(dtype)
        self.int_dtype = np.dtype(np.int64)

    def tune_process(self):
        """minigrad.accel.tune_process(): numba's and OpenBLAS's threads share the cores (see
        minigrad/accel/tuning.py); once per process, off with MINIGRAD_CPU_TUNING=0."""
        return minigrad.accel.tune_process()

    # ---- tensors ----------------------------------------------------------------------
    def tensor(self, data, dtype=None, requires_grad=False):
        array = np.asarray(data)
        dtype = self.resolve_dtype(dtype)
        if dtype is None and np.issubdtype(array.dtype, np.floating):
            dtype = self.dtype
        return minigrad.tensor(array, dtype=dtype, requires_grad=requires_grad)

    def to_numpy(self, t):
        return t.data if isinstance(t, minigrad.Tensor) else np.asarray(t)

    def is_tensor(self, x):
        return isinstance(x, minigrad.Tensor)

    def zeros(self, *size, dtype=None):
        return minigrad.zeros(*size, dtype=self.resolve_dtype(dtype) or self.dtype)

    def arange(self, *args, dtype=None):
        return minigrad.arange(*args, dtype=self.resolve_dtype(dtype))

    def cat(self, tensors, dim=0):
        return minigrad.cat(tensors, dim)

    def stack(self, tensors, dim=0):
        return minigrad.stack(tensors, dim)

    def where(self, condition, input, other):
        return minigrad.where(condition, input, other)

    # ---- autograd ---------------------------------------------------------------------
    def no_grad(self):
        return minigrad.no_grad()

    # ---- modules ----------------------------------------------------------------------
    def place(self, module):
        return module.to(self.dtype)

    def load_numpy_state(self, module, arrays, strict=True):
        return module.load_state_dict(arrays, strict=strict)

    # ---- training ---------------------------------------------------------------------
    def optimizer(self, name, params, lr, **kwargs):
        return _OPTIMIZERS[self.check_optimizer_name(name)](params, lr=lr, **kwargs)

    def lambda_lr(self, optimizer, fn):
        return minigrad_optim.LambdaLR(optimizer, fn)

    def clip_grad_norm_(self, params, max_norm):
        return float(minigrad_optim.clip_grad_norm_(list(params), max_norm).item())

    def optimizer_state_to_numpy(self, optimizer):
        return optimizer.state_dict()

    def load_optimizer_state(self, optimizer, state):
        optimizer.load_state_dict(state)

    # ---- randomness -------------------------------------------------------------------
    def manual_seed(self, seed):
        minigrad.manual_seed(seed)

    def get_rng_state(self):
        return {"minigrad": minigrad.random.default_generator.get_state()}

    def set_rng_state(self, state):
        minigrad.random.default_generator.set_state(state["minigrad"])

    # ---- precision --------------------------------------------------------------------
    def synchronize(self):
        """Nothing to wait for: minigrad runs synchronously on the CPU."""

    def autocast(self, dtype=None):
        """Only dtype=None (a no-op): minigrad computes in the parameters' dtype."""
        if dtype is not None:
            raise ValueError(
                f"the numpy backend has no mixed precision (autocast dtype={dtype!r}); "
                "pass dtype=None, or use get_backend('numpy', dtype='float32')"
            )
        return contextlib.nullcontext()

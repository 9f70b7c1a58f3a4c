"""Backends: the same model and loss code on minigrad or on PyTorch.

    from backends import get_backend
    be = get_backend("torch", device="cuda", dtype="float32")   # or get_backend("numpy")

See `base.py` for the surface every backend provides, and `parity.py` for a
per-parameter report comparing two models' gradients (on any backends).
"""

from .base import FLOAT_DTYPES, Backend, ModelDefinition, check_dtype_name

BACKENDS = ("numpy", "torch")
_cache = {}


def torch_available() -> bool:
    """True when torch can be imported here (the optional extra is installed)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA device."""
    if not torch_available():
        return False
    import torch

    return torch.cuda.is_available()


def get_backend(name="numpy", device=None, dtype="float32") -> Backend:
    """The backend `name` ("numpy" or "torch") on `device` ("cpu", "cuda") with float `dtype`.

    Backends are cached: the same arguments give the same object. torch is
    imported only when asked for. Each wrong argument is a one-line error naming
    it: an unknown name (ValueError), torch not installed (ImportError), CUDA
    asked for where there is none (RuntimeError), an unknown device or dtype
    (ValueError).
    """
    if isinstance(name, Backend):
        return name
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    check_dtype_name(dtype)
    key = (name, device or "cpu", dtype)
    if key not in _cache:
        if name == "numpy":
            from .numpy_backend import NumpyBackend

            _cache[key] = NumpyBackend(device, dtype)
        else:
            if not torch_available():
                raise ImportError(
                    "the torch backend needs PyTorch, which is not installed; install the extra with "
                    "`pip install 'minigrad-dpo[torch]'` (or `pip install torch==2.13.0`)"
                )
            from .torch_backend import TorchBackend

            _cache[key] = TorchBackend(device, dtype)
    return _cache[key]


def resolve_backend(backend) -> Backend:
    """A Backend from a Backend, a name, or None (the numpy backend, float32)."""
    if backend is None:
        return get_backend("numpy")
    if isinstance(backend, str):
        return get_backend(backend)
    if isinstance(backend, Backend):
        return backend
    raise TypeError(f"backend must be a name ({', '.join(BACKENDS)}) or a Backend, got {type(backend).__name__}")


def distributed_support(backend):
    """The module with `backend`'s multi-process training (process group, DDP, collectives),
    or None where the backend is one process only (numpy)."""
    if backend.name == "torch":
        from . import torch_distributed

        return torch_distributed
    return None


__all__ = ["get_backend", "distributed_support", "resolve_backend", "Backend", "ModelDefinition", "BACKENDS",
           "FLOAT_DTYPES", "torch_available", "cuda_available"]

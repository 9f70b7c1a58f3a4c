"""The torch backend: real PyTorch on the CPU or CUDA, with the same surface.

Importing this module imports torch; `get_backend("torch")` imports it only then.
Each method's contract is in `base.Backend`. Models built here are real
`torch.nn.Module`s: hand them to torch.optim, torch.compile or DDP directly.
"""

import contextlib
import copy
import types

import numpy as np
import torch
import torch.nn.functional as torch_functional

from .base import Backend


def token_logprobs(logits, targets, ignore_index=-100):
    """log softmax(logits)[..., target] per position, 0 where target == ignore_index
    (minigrad's `F.token_logprobs`, for torch)."""
    if tuple(logits.shape[:-1]) != tuple(targets.shape):
        raise ValueError(
            f"token_logprobs: logits of shape {tuple(logits.shape)} need targets of shape "
            f"{tuple(logits.shape[:-1])}, got {tuple(targets.shape)}"
        )
    valid = targets != ignore_index
    safe = torch.where(valid, targets, torch.zeros_like(targets))
    picked = torch_functional.log_softmax(logits, dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return picked.masked_fill(~valid, 0.0)


def rotary_embedding(x, cos, sin):
    """x∘cos + rotate_half(x)∘sin, rotate_half([x1, x2]) = [-x2, x1] (minigrad's
    `F.rotary_embedding`, for torch)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def _functional_namespace():
    """torch.nn.functional plus the minigrad extensions the models and DPO code use."""
    names = [k for k in dir(torch_functional) if not k.startswith("__")]
    namespace = types.SimpleNamespace(**{k: getattr(torch_functional, k) for k in names})
    namespace.token_logprobs = token_logprobs
    namespace.rotary_embedding = rotary_embedding
    return namespace


_F = _functional_namespace()
_AUTOCAST_DTYPES = ("bfloat16", "float16")
_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
               "rmsprop": torch.optim.RMSprop}


class TorchBackend(Backend):
    name = "torch"
    nn = torch.nn
    F = _F
    _dtypes = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64, "bool": torch.bool}

    def __init__(self, device=None, dtype="float32"):
        device = device or "cpu"
        super().__init__(device, dtype)
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(
                f"device={device!r} asked for, but CUDA is not available to this torch "
                f"({torch.__version__}, {'a CPU-only build' if torch.version.cuda is None else 'no GPU visible'}); "
                "use device='cpu' or install a CUDA build of torch (see README)"
            )
        if not (device == "cpu" or str(device).startswith("cuda")):
            raise ValueError(f"unknown device {device!r}; use 'cpu' or 'cuda'")
        self.torch_device = torch.device(device)
        self.dtype = self._dtypes[dtype]
        self.int_dtype = torch.int64

    # ---- tensors ----------------------------------------------------------------------
    def tensor(self, data, dtype=None, requires_grad=False):
        array = np.asarray(data)
        dtype = self.resolve_dtype(dtype)
        if dtype is None and np.issubdtype(array.dtype, np.floating):
            dtype = self.dtype
        if np.issubdtype(array.dtype, np.integer):
            array = array.astype(np.int64)
        t = torch.tensor(array, dtype=dtype, device=self.torch_device)  # always a copy
        return t.requires_grad_(requires_grad) if requires_grad else t

    def to_numpy(self, t):
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu()
            if t.dtype == torch.bfloat16:
                t = t.float()
            return t.numpy()
        return np.asarray(t)

    def is_tensor(self, x):
        return isinstance(x, torch.Tensor)

    def cat(self, tensors, dim=0):
        return torch.cat(list(tensors), dim)

    def stack(self, tensors, dim=0):
        return torch.stack(list(tensors), dim)

    def where(self, condition, input, other):
        return torch.where(condition, input, other)

    def zeros(self, *size, dtype=None):
        return torch.zeros(*size, dtype=self.resolve_dtype(dtype) or self.dtype, device=self.torch_device)

    def arange(self, *args, dtype=None):
        return torch.arange(*args, dtype=self.resolve_dtype(dtype), device=self.torch_device)

    # ---- autograd ---------------------------------------------------------------------
    def no_grad(self):
        return torch.no_grad()

    # ---- modules ----------------------------------------------------------------------
    def place(self, module):
        return module.to(device=self.torch_device, dtype=self.dtype)

    def load_numpy_state(self, module, arrays, strict=True):
        tensors = {k: torch.as_tensor(np.asarray(v)) for k, v in arrays.items()}
        return module.load_state_dict(tensors, strict=strict)

    def synchronize(self):
        """torch.cuda.synchronize() on a CUDA device (kernels run asynchronously); no-op on the CPU."""
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize(self.torch_device)

    # ---- precision --------------------------------------------------------------------
    def autocast(self, dtype=None):
        """torch.autocast on this device in `dtype` ("bfloat16" or "float16"); dtype=None: a no-op."""
        if dtype is None:
            return contextlib.nullcontext()
        if dtype not in _AUTOCAST_DTYPES:
            raise ValueError(f"unknown autocast dtype {dtype!r}; choose one of: {', '.join(_AUTOCAST_DTYPES)} or None")
        return torch.autocast(self.torch_device.type, dtype=getattr(torch, dtype))

    # ---- training ---------------------------------------------------------------------
    def optimizer(self, name, params, lr, **kwargs):
        return _OPTIMIZERS[self.check_optimizer_name(name)](params, lr=lr, **kwargs)

    def lambda_lr(self, optimizer, fn):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)

    def clip_grad_norm_(self, params, max_norm):
        norm = torch.nn.utils.clip_grad_norm_(list(params), max_norm)
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # FSDP2: a replicated DTensor

    def optimizer_state_to_numpy(self, optimizer):
        state = optimizer.state_dict()  # its tensors are the live ones: copy them out

        def to_numpy(value):
            if not torch.is_tensor(value):
                return copy.deepcopy(value)
            return np.array(self.to_numpy(value), copy=True) if value.ndim else value.item()

        return {
            "state": {i: {k: to_numpy(v) for k, v in s.items()} for i, s in state["state"].items()},
            "param_groups": copy.deepcopy(state["param_groups"]),
        }

    def load_optimizer_state(self, optimizer, state):
        converted = {
            "state": {int(i): {k: (torch.tensor(v) if isinstance(v, np.ndarray) else  # a copy: steps work in place
                                   (torch.tensor(float(v)) if k == "step" else v)) for k, v in s.items()}
                      for i, s in state["state"].items()},
            "param_groups": state["param_groups"],
        }
        optimizer.load_state_dict(converted)

    # ---- randomness -------------------------------------------------------------------
    def manual_seed(self, seed):
        torch.manual_seed(seed)
        if self.torch_device.type == "cuda":
            torch.cuda.manual_seed(seed)

    def get_rng_state(self):
        state = {"torch": torch.get_rng_state().numpy()}
        if self.torch_device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.torch_device).numpy()
        return state

    def set_rng_state(self, state):
        torch.set_rng_state(torch.as_tensor(state["torch"]))
        if "cuda" in state and self.torch_device.type == "cuda":
            torch.cuda.set_rng_state(torch.as_tensor(state["cuda"]), self.torch_device)

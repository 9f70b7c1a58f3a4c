"""torch.distributed for the torch backend: the process group, DDP / FSDP2 wrapping and
the few collectives `dpo.distributed` needs, on NumPy arrays in and out.

Reached through `backends.distributed_support(backend)`; code outside backends/ never
imports this module by name. The process group is gloo on the CPU and NCCL on CUDA.
"""

from __future__ import annotations

import contextlib
import copy
import datetime

import numpy as np
import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel


def init(backend, timeout_s: float):
    """Join the process group torchrun described in the environment (env://): gloo for a CPU
    backend, NCCL for a CUDA one; `timeout_s` bounds every collective. No-op if joined already."""
    if not torch_dist.is_initialized():
        cuda = backend.torch_device.type == "cuda"
        if cuda:
            torch.cuda.set_device(backend.torch_device)
        torch_dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s),
                                      device_id=backend.torch_device if cuda else None)
    return torch_dist.get_rank(), torch_dist.get_world_size()


def destroy():
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def _device():
    return torch.device("cuda", torch.cuda.current_device()) if torch_dist.get_backend() == "nccl" \
        else torch.device("cpu")


def all_reduce_sum(values: np.ndarray) -> np.ndarray:
    """The element-wise sum over the ranks of a float64 array (exact order-free for two ranks)."""
    t = torch.tensor(np.asarray(values, dtype=np.float64), device=_device())
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.SUM)
    return t.cpu().numpy()


def all_gather_object(value) -> list:
    """Every rank's `value` (any picklable object), in rank order."""
    out = [None] * torch_dist.get_world_size()
    torch_dist.all_gather_object(out, value)
    return out


def broadcast_object(value, src: int = 0):
    box = [value]
    torch_dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier():
    torch_dist.barrier()


class _Passthrough:
    """Attributes the wrapper lacks (config, export_weights, ...) come from the wrapped model,
    and the class keeps the `backend` class attribute the DPO code reads."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("module"), name)


def wrap_ddp(model):
    """`model` in DistributedDataParallel (parameters broadcast from rank 0 on construction);
    the wrapper's class carries the model's `backend` so the backend-generic code takes it."""
    cls = type(f"DDP{type(model).__name__}", (_Passthrough, DistributedDataParallel), {"backend": type(model).backend})
    device_ids = [model_device(model).index] if model_device(model).type == "cuda" else None
    return cls(model, device_ids=device_ids)


def model_device(model):
    return next(model.parameters()).device


def no_sync(wrapped):
    """DDP's no_sync (gradients accumulate locally, no all-reduce); a no-op for other wrappers."""
    return wrapped.no_sync() if isinstance(wrapped, DistributedDataParallel) else contextlib.nullcontext()


# ---- FSDP2 -------------------------------------------------------------------------------
_HOST = "_dpo_unsharded_host"  # rank 0's unsharded CPU copy of an FSDP model, which checkpoints are written from


def wrap_fsdp(model):
    """FSDP2 in place: every module of each ModuleList (the transformer blocks) is its own
    shard unit, then the root. Parameters become DTensors sharded over the ranks; the
    model keeps its class's methods and `backend` (fully_shard subclasses it). Rank 0 keeps
    an unsharded copy in CPU memory to save from (`full_copies`)."""
    from torch.distributed.fsdp import fully_shard

    if torch_dist.get_rank() == 0:
        host = copy.deepcopy(model).to("cpu")
        host.requires_grad_(False)
        object.__setattr__(model, _HOST, host)  # not a submodule: FSDP must not shard it

    for module in list(model.modules()):
        if isinstance(module, torch.nn.ModuleList):
            for child in module:
                fully_shard(child)
    fully_shard(model)
    return model


def _full(value):
    """A DTensor gathered into one plain tensor on every rank (a collective); anything else as it is."""
    return value.full_tensor() if hasattr(value, "full_tensor") else value


def full_weights(model) -> dict:
    """{name: NumPy array} of the whole model on every rank (all-gathers the shards under FSDP2)."""
    backend = type(model).backend
    return {name: np.array(backend.to_numpy(_full(value)), copy=True) for name, value in model.state_dict().items()}


def full_copies(model, optimizer):
    """(model, optimizer) with the whole state, for a checkpoint or a saved model folder: on rank 0
    the unsharded copy of the model (its own class: export_weights, save_pretrained, ...) holding
    every shard gathered, and an optimizer stand-in whose state_dict is gathered likewise; None on
    the other ranks. A collective under FSDP2: every rank calls it, rank 0 writes."""
    weights = full_weights(model)
    stand_in = None
    if torch_dist.get_rank() == 0:
        stand_in = object.__getattribute__(model, _HOST)
        stand_in.load_state_dict({name: torch.as_tensor(value) for name, value in weights.items()})
    if optimizer is None:
        return stand_in, None
    state = optimizer.state_dict()
    state = {"state": {i: {k: _full(v) for k, v in s.items()} for i, s in state["state"].items()},
             "param_groups": state["param_groups"]}
    return stand_in, type("FullOptimizer", (), {"state_dict": lambda self: state,
                                                "param_groups": optimizer.param_groups})()


def shard_optimizer_state(optimizer):
    """After loading a whole (checkpointed) optimizer state into an optimizer of FSDP2 parameters:
    each moment shaped like its parameter becomes a DTensor sharded as the parameter is."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    for group in optimizer.param_groups:
        for param in group["params"]:
            if not isinstance(param, DTensor):
                continue
            state = optimizer.state.get(param, {})
            for key, value in list(state.items()):
                plain = torch.is_tensor(value) and not isinstance(value, DTensor)
                if plain and tuple(value.shape) == tuple(param.shape):
                    state[key] = distribute_tensor(value.to(param.dtype), param.device_mesh, param.placements)

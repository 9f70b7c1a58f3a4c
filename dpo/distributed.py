"""Data-parallel DPO across processes (torchrun), written against the backend surface.

    torchrun --nproc_per_node 2 -m dpo train --backend torch --out runs/ddp ...

`Distributed` is what the training loop asks: which rank am I, which part of this global
batch is mine, sum these numbers over the ranks, wrap the policy for gradient all-reduce.
One process (`SINGLE`) answers every question as the identity, so the loop is the same
code with or without torchrun. The torch specifics (process group, DDP, collectives) are
in `backends/torch_distributed.py`, reached through `backends.distributed_support`.

Invariants the equivalence with one process rests on:
- `config.batch_size` is the GLOBAL micro-batch; rank r takes the r-th contiguous slice of
  every global micro-batch (`shard`), so the global order and the updates do not depend on
  the number of processes, and a checkpoint resumes under any number of them;
- each rank's mean loss is weighted by world_size · (its pairs / the update's pairs), so
  DDP's gradient average is the one-process gradient of the update's mean loss;
- metrics are pair-weighted sums all-reduced over the ranks (global means);
- only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

TIMEOUT_ENV = "DPO_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0


class DistributedError(ValueError):
    """A usage error of multi-process training (wrong backend, option, environment)."""


def launched() -> bool:
    """True inside a process that torchrun started (it sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def timeout_s() -> float:
    """Seconds a collective waits for the other ranks before this rank gives up
    ($DPO_DIST_TIMEOUT, default 60)."""
    text = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DistributedError(f"${TIMEOUT_ENV}={text!r}: must be a number of seconds > 0")
    return value


def local_device(device: str | None) -> str | None:
    """Under torchrun, a bare "cuda" means this process's GPU, cuda:$LOCAL_RANK."""
    if launched() and device == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


class Distributed:
    """One process's view of the group (see the module docstring); `ops` is the backend's
    distributed module, None for a single process."""

    def __init__(self, ops=None, rank: int = 0, world_size: int = 1, fsdp: bool = False):
        self.ops, self.rank, self.world_size, self.fsdp = ops, rank, world_size, fsdp

    @property
    def active(self) -> bool:
        return self.ops is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def __repr__(self):
        return f"<Distributed rank {self.rank} of {self.world_size}>"

    def bounds(self, n: int, rank: int | None = None) -> tuple:
        """[start, stop) of rank's contiguous share of n items: sizes differ by at most one,
        the larger shares first (as numpy.array_split)."""
        rank = self.rank if rank is None else rank
        base, extra = divmod(n, self.world_size)
        start = rank * base + min(rank, extra)
        return start, start + base + (1 if rank < extra else 0)

    def shard(self, items):
        start, stop = self.bounds(len(items))
        return items[start:stop]

    def per_rank(self, batch_size: int) -> int:
        """The most pairs a rank takes from a global micro-batch of `batch_size`."""
        return -(-batch_size // self.world_size)

    # ---- collectives (identity for one process) ---------------------------------------
    def sum(self, values) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        return self.ops.all_reduce_sum(values) if self.active else values

    def any(self, flag: bool) -> bool:
        return bool(self.sum([1.0 if flag else 0.0])[0] > 0)

    def gather_rows(self, rows: np.ndarray) -> np.ndarray:
        """Every rank's rows concatenated in rank order (the shards back into one array)."""
        if not self.active:
            return rows
        return np.concatenate([np.asarray(part) for part in self.ops.all_gather_object(np.asarray(rows))])

    def barrier(self):
        if self.active:
            self.ops.barrier()

    def sum_metrics(self, metrics: dict) -> dict:
        """Sum pair-weighted metric values over the ranks (the keys are the same on every rank)."""
        if not self.active:
            return metrics
        keys = sorted(metrics)
        return dict(zip(keys, (float(v) for v in self.sum([metrics[k] for k in keys]))))

    # ---- the model ----------------------------------------------------------------------
    def wrap(self, model):
        """The model to run forward and backward through: DDP around it, or (fsdp) the model itself
        sharded in place with FSDP2 (build the optimizer after this); `model` itself for one process."""
        if not self.active:
            return model
        return self.ops.wrap_fsdp(model) if self.fsdp else self.ops.wrap_ddp(model)

    def full_weights(self, model) -> dict:
        """The whole model's {name: array}; under FSDP a collective every rank must call."""
        return self.ops.full_weights(model) if self.fsdp else model.export_weights()

    def full_copies(self, model, optimizer):
        """(model, optimizer) holding the whole state, for save_checkpoint; under FSDP a collective
        every rank must call (rank 0 then writes); the objects themselves otherwise."""
        return self.ops.full_copies(model, optimizer) if self.fsdp else (model, optimizer)

    def shard_optimizer_state(self, optimizer):
        """After restoring a checkpoint's whole optimizer state: shard it as the parameters are (FSDP)."""
        if self.fsdp:
            self.ops.shard_optimizer_state(optimizer)

    def no_sync(self, wrapped):
        """Inside: backward accumulates gradients without the all-reduce (all micro-steps but the last)."""
        return self.ops.no_sync(wrapped) if self.active else contextlib.nullcontext()

    def close(self):
        if self.active:
            self.ops.destroy()


SINGLE = Distributed()


def from_environment(backend, fsdp: bool = False) -> Distributed:
    """SINGLE outside torchrun; under it, join the process group on `backend` (which must
    support multi-process training) and return this rank's Distributed (FSDP2 with `fsdp`)."""
    if not launched():
        if fsdp:
            raise DistributedError("--fsdp shards the model over the processes of torchrun; launch with "
                                   "torchrun --nproc_per_node N -m dpo train --backend torch --fsdp ...")
        return SINGLE
    from backends import distributed_support

    ops = distributed_support(backend)
    if ops is None:
        if int(os.environ["WORLD_SIZE"]) == 1 and not fsdp:
            return SINGLE
        raise DistributedError(
            f"--backend {backend.name} runs in one process; under torchrun (WORLD_SIZE="
            f"{os.environ.get('WORLD_SIZE')}) use --backend torch, or run without torchrun")
    rank, world_size = ops.init(backend, timeout_s())
    return Distributed(ops, rank, world_size, fsdp)

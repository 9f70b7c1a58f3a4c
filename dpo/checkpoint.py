"""Checkpoints: weights + config + optimizer state + step + RNG state in one safetensors file.

Layout (all names are safetensors tensors, all metadata values JSON strings):

    model.<name>                  the model's state dict (e.g. model.tok.weight)
    optimizer.<i>.<key>           per-parameter optimizer arrays (exp_avg, momentum_buffer, ...)
    rng.<key>                     array-valued RNG states (torch's generator)
    __metadata__  format, config, step, epoch, optimizer (groups and scalar state),
                  scheduler, rng (JSON-able RNG states), backend, extra

A PyTorch user loads the weights with
`{k[6:]: v for k, v in safetensors.torch.load_file(path).items() if k.startswith("model.")}`.
Files are written atomically (see `safetensors_io.save_file`).
"""

from __future__ import annotations

import json

import numpy as np

from . import safetensors_io
from .safetensors_io import CheckpointError

FORMAT = "minigrad-dpo-checkpoint/1"


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in checkpoint metadata")


def _dumps(value) -> str:
    return json.dumps(value, default=_json_default)


def save_checkpoint(path, model, config, *, optimizer=None, scheduler=None, step=0, epoch=0, extra=None) -> None:
    """Write model weights, `config` (a DPOConfig or dict), optimizer and scheduler
    state, step, epoch and the backend's RNG state to `path`, atomically."""
    backend = type(model).backend
    tensors = {f"model.{k}": v for k, v in model.export_weights().items()}
    metadata = {
        "format": FORMAT,
        "config": _dumps(config.to_dict() if hasattr(config, "to_dict") else config),
        "step": str(int(step)),
        "epoch": str(int(epoch)),
        "backend": _dumps({"name": backend.name, "dtype": backend.dtype_name}),
        "extra": _dumps(extra or {}),
    }
    if optimizer is not None:
        state = backend.optimizer_state_to_numpy(optimizer)
        scalars = {}
        for index, entry in state["state"].items():
            for key, value in entry.items():
                if isinstance(value, np.ndarray) and value.ndim:
                    tensors[f"optimizer.{index}.{key}"] = value
                else:
                    scalars.setdefault(str(index), {})[key] = value
        groups = [{k: v for k, v in g.items()} for g in state["param_groups"]]
        metadata["optimizer"] = _dumps({"param_groups": groups, "scalars": scalars})
    if scheduler is not None:
        metadata["scheduler"] = _dumps({"last_epoch": scheduler.last_epoch})
    rng_json = {}
    for key, value in backend.get_rng_state().items():
        if isinstance(value, np.ndarray):
            tensors[f"rng.{key}"] = value
        else:
            rng_json[key] = value
    metadata["rng"] = _dumps(rng_json)
    safetensors_io.save_file(path, tensors, metadata)


class Checkpoint:
    """What `load_checkpoint` read: weights, config dict, step, epoch, and the raw
    optimizer / scheduler / RNG state for `restore_training_state`."""

    def __init__(self, path, tensors, metadata):
        if metadata.get("format") != FORMAT:
            raise CheckpointError(
                f"{path}: not a minigrad-dpo checkpoint (format {metadata.get('format')!r}, expected {FORMAT!r})"
            )
        self.path = str(path)
        try:
            self.config = json.loads(metadata["config"])
            self.step = int(metadata["step"])
            self.epoch = int(metadata["epoch"])
            self.backend = json.loads(metadata["backend"])
            self.extra = json.loads(metadata.get("extra", "{}"))
            self._optimizer = json.loads(metadata["optimizer"]) if "optimizer" in metadata else None
            self._scheduler = json.loads(metadata["scheduler"]) if "scheduler" in metadata else None
            self._rng = json.loads(metadata.get("rng", "{}"))
        except KeyError as error:
            raise CheckpointError(f"{path}: damaged checkpoint: its metadata lacks {error.args[0]!r}") from None
        except ValueError as error:  # json.JSONDecodeError, int("...")
            raise CheckpointError(f"{path}: damaged checkpoint: unreadable metadata ({error})") from None
        if not isinstance(self.config, dict):
            raise CheckpointError(f"{path}: damaged checkpoint: its config is not a JSON object")
        self.weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        if not self.weights:
            raise CheckpointError(f"{path}: damaged checkpoint: it holds no model.* weights")
        self._tensors = tensors

    def optimizer_state(self):
        """The optimizer state in the numpy form `backend.load_optimizer_state` takes."""
        if self._optimizer is None:
            return None
        state = {}
        for key, value in self._tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        for index, entry in self._optimizer["scalars"].items():
            state.setdefault(int(index), {}).update(entry)
        groups = []
        for g in self._optimizer["param_groups"]:
            g = dict(g)
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
            groups.append(g)
        return {"state": state, "param_groups": groups}

    def rng_state(self):
        state = dict(self._rng)
        state.update({k[len("rng."):]: v for k, v in self._tensors.items() if k.startswith("rng.")})
        return state

    def restore_training_state(self, optimizer=None, scheduler=None, backend=None):
        """Put optimizer moments, schedule position and RNG state back (`backend`: the
        one the optimizer belongs to; its global generator gets the saved RNG state)."""
        if optimizer is not None and backend is None:
            raise ValueError("restore_training_state: pass backend= the optimizer's backend to restore its state")
        if optimizer is not None and self._optimizer is not None:
            backend.load_optimizer_state(optimizer, self.optimizer_state())
        if scheduler is not None and self._scheduler is not None:
            # the position in the schedule; the learning rate itself comes back with the optimizer's
            # param_groups (minigrad's LambdaLR and torch's both read only last_epoch from here on)
            scheduler.last_epoch = self._scheduler["last_epoch"]
        if backend is not None:
            state = self.rng_state()
            if state:
                try:
                    backend.set_rng_state(state)
                except KeyError:  # written by the other backend: its generator does not apply here
                    pass


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint` (clear error for anything else)."""
    tensors, metadata = safetensors_io.load_file(path)
    return Checkpoint(path, tensors, metadata)


__all__ = ["save_checkpoint", "load_checkpoint", "Checkpoint", "CheckpointError"]

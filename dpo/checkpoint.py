"""Model files and training checkpoints, in Hugging Face Trainer's layout.

A *model file* (`save_model`) is one safetensors file whose tensor names are the
model's plain state-dict names, so PyTorch users load it as they expect:

    model.load_state_dict(safetensors.torch.load_file("runs/a/checkpoint-8/model.safetensors"))

Its string metadata (ignored by that reader) holds `format` ("pt", what
transformers expects), `minigrad_dpo` (this module's format tag), `config` (the
DPOConfig), `architecture` (model class and its config), `step`, `backend`, and
`reference`, the fingerprint of the reference the policy was trained against.
`sft.safetensors`, `reference.safetensors` and the policy inside a checkpoint
are model files.

A *checkpoint* (`save_checkpoint`) is a folder `checkpoint-<step>/` holding

    model.safetensors      the policy (a model file)
    config.json, ...       what `model.save_pretrained` writes, for a model that has it (the
                           pretrained families), so that transformers' from_pretrained reads the folder
    optimizer.safetensors  optimizer tensors as `<param index>.<key>`; param groups, scalar
                           state and the schedule position in its metadata
    trainer_state.json     global_step, epoch, max_steps, log_history (every metrics row so
                           far) and the RNG states, like transformers' Trainer
    reference.safetensors  only when the reference moves during training (TR-DPO): the one this
                           policy was trained against at this step

written into a temporary folder, each file flushed to disk, then renamed into
place: a crash at any moment leaves the complete previous checkpoints and at
most a `.checkpoint-*.tmp` folder, which `remove_leftovers` deletes. Every
floating-point tensor read back is checked to be finite.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import shutil
import uuid

import numpy as np

from . import safetensors_io
from .safetensors_io import CheckpointError

FORMAT = "minigrad-dpo-model/1"
MODEL_FILE, OPTIMIZER_FILE, STATE_FILE = "model.safetensors", "optimizer.safetensors", "trainer_state.json"
REFERENCE_FILE = "reference.safetensors"  # in a run folder; in a checkpoint too when the reference moves (TR-DPO)
CHECKPOINT_PREFIX = "checkpoint-"
_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
# what save_checkpoint, safetensors_io.save_file and run.json (".NAME.*.tmp"), and dpo.ref_cache ("NAME.tmp.npz"),
# write before renaming it into place
_LEFTOVER = re.compile(r"^\..*\.tmp$|\.tmp\.npz$")


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):  # RNG states: exact bytes, not a list of numbers
        return {"__ndarray__": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode("ascii"),
                "dtype": value.dtype.str, "shape": list(value.shape)}
    raise TypeError(f"cannot store {type(value).__name__} in checkpoint metadata")


def _json_object_hook(value):
    if "__ndarray__" in value:
        raw = base64.b64decode(value["__ndarray__"])
        return np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
    return value


def _dumps(value) -> str:
    return json.dumps(value, default=_json_default)


def _loads(text):
    return json.loads(text, object_hook=_json_object_hook)


def weights_fingerprint(weights: dict) -> str:
    """sha256 over the names, shapes and float64 values of `weights` ({name: array}): the same
    for a model on either backend and in float32 or float64 when the values are equal."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        array = np.ascontiguousarray(np.asarray(weights[name], dtype=np.float64))
        digest.update(f"{name}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def architecture_of(model) -> dict:
    """The model class and its config: what must agree between a policy and its reference."""
    config = model.config
    if hasattr(config, "to_dict"):
        values = config.to_dict()
    else:  # the pretrained families' frozen dataclasses (their `raw` copy of config.json does not compare)
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.compare}
    return json.loads(json.dumps({"class": type(model).__name__, **values}, default=_json_default))  # as stored


def architecture_difference(first: dict, second: dict) -> str | None:
    """'hidden 32 vs 64, ...' for the fields that differ, or None when the architectures agree."""
    keys = [k for k in dict.fromkeys([*first, *second]) if first.get(k) != second.get(k)]
    return ", ".join(f"{k} {first.get(k)} vs {second.get(k)}" for k in keys) or None


def _check_finite(path, tensors):
    for name, array in tensors.items():
        if array.dtype.kind == "f":
            bad = ~np.isfinite(array)
            if bad.any():
                what = "NaN" if np.isnan(array[bad]).any() else "infinite"
                raise CheckpointError(f"{path}: tensor {name!r} holds {int(bad.sum())} {what} value(s); "
                                      "the file is unusable (a diverged or damaged run)")


def _write_durably(path, data: bytes):
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


# ---- model files -----------------------------------------------------------------------------
def _model_tensors_and_metadata(model, config, step, reference):
    backend = type(model).backend
    metadata = {
        "format": "pt",
        "minigrad_dpo": FORMAT,
        "config": _dumps(config.to_dict() if hasattr(config, "to_dict") else config),
        "architecture": _dumps(architecture_of(model)),
        "step": str(int(step)),
        "backend": _dumps({"name": backend.name, "dtype": backend.dtype_name}),
        "reference": reference or "",
    }
    return model.export_weights(), metadata


def save_model(path, model, config, *, step=0, reference=None) -> None:
    """Write `model`'s weights (plain state-dict names) with `config` (a DPOConfig or dict),
    its architecture, `step` and the fingerprint of its `reference`, atomically."""
    tensors, metadata = _model_tensors_and_metadata(model, config, step, reference)
    safetensors_io.save_file(path, tensors, metadata)


# ---- checkpoints ------------------------------------------------------------------------------
def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{int(step)}"


def save_checkpoint(folder, model, config, *, optimizer=None, scheduler=None, step=0, epoch=0, extra=None,
                    reference=None, log_history=None, max_steps=None, reference_model=None) -> str:
    """Write the checkpoint folder `folder` (normally `<out>/checkpoint-<step>`): model,
    optimizer and schedule state, step, epoch, the backend's RNG state, `extra` (JSON-able
    state such as bco_pair's running mean) and `log_history`; `reference`: the fingerprint of
    the reference, and `reference_model` the reference itself where it moves with training.
    Atomic: the folder appears complete or not at all. Returns the folder's path."""
    folder = os.path.abspath(os.fspath(folder))
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    backend = type(model).backend
    tensors, metadata = _model_tensors_and_metadata(model, config, step, reference)
    files = {MODEL_FILE: safetensors_io.encode(tensors, metadata)}
    if reference_model is not None:
        files[REFERENCE_FILE] = safetensors_io.encode(*_model_tensors_and_metadata(reference_model, config, step, None))
    if optimizer is not None:
        state = backend.optimizer_state_to_numpy(optimizer)
        arrays, scalars = {}, {}
        for index, entry in state["state"].items():
            for key, value in entry.items():
                if isinstance(value, np.ndarray) and value.ndim:
                    arrays[f"{index}.{key}"] = value
                else:
                    scalars.setdefault(str(index), {})[key] = value
        optimizer_metadata = {"param_groups": _dumps([dict(g) for g in state["param_groups"]]),
                              "scalars": _dumps(scalars),
                              "scheduler": _dumps({"last_epoch": scheduler.last_epoch} if scheduler else None)}
        files[OPTIMIZER_FILE] = safetensors_io.encode(arrays, optimizer_metadata)
    trainer_state = {
        "global_step": int(step),
        "epoch": int(epoch),
        "max_steps": max_steps,
        "log_history": list(log_history or []),
        "rng": backend.get_rng_state(),
        "extra": extra or {},
        "backend": {"name": backend.name, "dtype": backend.dtype_name},
    }
    files[STATE_FILE] = (json.dumps(trainer_state, default=_json_default, indent=1) + "\n").encode()

    name = os.path.basename(folder)
    temporary = os.path.join(parent, f".{name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    os.mkdir(temporary)
    try:
        if hasattr(model, "save_pretrained"):  # a pretrained family: config.json etc., for from_pretrained
            model.save_pretrained(temporary)
        for filename, data in files.items():  # model.safetensors replaces save_pretrained's: same names, our metadata
            _write_durably(os.path.join(temporary, filename), data)
        safetensors_io._fsync_folder(temporary)
        if os.path.exists(folder):  # the same step again (a resume from an older checkpoint): replace it
            retired = os.path.join(parent, f".{name}.old.{uuid.uuid4().hex}.tmp")
            os.replace(folder, retired)
            os.replace(temporary, folder)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(temporary, folder)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    safetensors_io._fsync_folder(parent)
    return folder


def list_checkpoints(out_dir) -> list:
    """[(step, path)] of the complete `checkpoint-<step>` folders in `out_dir`, oldest first."""
    if not os.path.isdir(out_dir):
        return []
    found = []
    for name in os.listdir(out_dir):
        match = _CHECKPOINT_NAME.match(name)
        if match and os.path.isfile(os.path.join(out_dir, name, MODEL_FILE)):
            found.append((int(match.group(1)), os.path.join(out_dir, name)))
    return sorted(found)


def latest_checkpoint(out_dir) -> str | None:
    """The newest checkpoint folder in `out_dir`, or None."""
    found = list_checkpoints(out_dir)
    return found[-1][1] if found else None


def rotate_checkpoints(out_dir, limit: int | None) -> list:
    """Delete the oldest checkpoint folders so that at most `limit` remain (None: keep all).
    Returns the paths removed."""
    if not limit:
        return []
    removed = []
    for _, path in list_checkpoints(out_dir)[:-limit]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def remove_leftovers(out_dir) -> list:
    """Delete the temporary files and folders (`.*.tmp`) that a killed write left in `out_dir`.
    Returns their names."""
    if not os.path.isdir(out_dir):
        return []
    removed = []
    for name in sorted(os.listdir(out_dir)):
        if _LEFTOVER.search(name):
            path = os.path.join(out_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
            removed.append(name)
    return removed


# ---- reading ----------------------------------------------------------------------------------
class Checkpoint:
    """What `load_checkpoint` read: weights, config dict, architecture, step, epoch, the
    reference's fingerprint, log_history, and (for a checkpoint folder) the raw optimizer /
    scheduler / RNG state for `restore_training_state`."""

    def __init__(self, path, tensors, metadata, optimizer=None, state=None):
        self.path = str(path)
        if metadata.get("minigrad_dpo") != FORMAT:
            raise CheckpointError(f"{path}: not a minigrad-dpo model file (format {metadata.get('minigrad_dpo')!r}, "
                                  f"expected {FORMAT!r})")
        try:
            self.config = json.loads(metadata["config"])
            self.architecture = json.loads(metadata["architecture"])
            self.step = int(metadata["step"])
            self.backend = json.loads(metadata["backend"])
            self.reference = metadata.get("reference") or None
        except KeyError as error:
            raise CheckpointError(f"{path}: damaged checkpoint: its metadata lacks {error.args[0]!r}") from None
        except ValueError as error:  # json.JSONDecodeError, int("...")
            raise CheckpointError(f"{path}: damaged checkpoint: unreadable metadata ({error})") from None
        if not isinstance(self.config, dict) or not isinstance(self.architecture, dict):
            raise CheckpointError(f"{path}: damaged checkpoint: its config is not a JSON object")
        if not tensors:
            raise CheckpointError(f"{path}: damaged checkpoint: it holds no weights")
        _check_finite(path, tensors)
        self.weights = tensors
        state = state or {}
        self.epoch = int(state.get("epoch", 0))
        self.max_steps = state.get("max_steps")
        self.log_history = list(state.get("log_history", []))
        self.extra = dict(state.get("extra", {}))
        self._rng = dict(state.get("rng", {}))
        self._optimizer = optimizer
        beside = os.path.join(self.path, REFERENCE_FILE)
        self.reference_file = beside if os.path.isdir(self.path) and os.path.isfile(beside) else None

    def optimizer_state(self):
        """The optimizer state in the numpy form `backend.load_optimizer_state` takes (None if absent)."""
        if self._optimizer is None:
            return None
        arrays, metadata = self._optimizer
        state = {}
        for key, value in arrays.items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        for index, entry in json.loads(metadata["scalars"]).items():
            state.setdefault(int(index), {}).update(entry)
        groups = []
        for g in json.loads(metadata["param_groups"]):
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
            groups.append(g)
        return {"state": state, "param_groups": groups}

    def rng_state(self):
        return dict(self._rng)

    def restore_training_state(self, optimizer=None, scheduler=None, backend=None):
        """Put optimizer moments, schedule position and RNG state back (`backend`: the
        one the optimizer belongs to; its global generator gets the saved RNG state)."""
        if optimizer is not None and backend is None:
            raise ValueError("restore_training_state: pass backend= the optimizer's backend to restore its state")
        if optimizer is not None and self._optimizer is not None:
            backend.load_optimizer_state(optimizer, self.optimizer_state())
        if scheduler is not None and self._optimizer is not None:
            saved = json.loads(self._optimizer[1].get("scheduler", "null"))
            if saved is not None:
                # the position in the schedule; the learning rate itself comes back with the optimizer's
                # param_groups (minigrad's LambdaLR and torch's both read only last_epoch from here on)
                scheduler.last_epoch = saved["last_epoch"]
        if backend is not None and self._rng:
            try:
                backend.set_rng_state(self.rng_state())
            except KeyError:  # written by the other backend: its generator does not apply here
                pass


def resolve_checkpoint_path(path) -> str:
    """A checkpoint folder, a model file, or a run folder (-> its newest checkpoint)."""
    path = os.fspath(path)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, MODEL_FILE)):
        newest = latest_checkpoint(path)
        if newest is None:
            raise CheckpointError(f"{path}: a folder with no {MODEL_FILE} and no {CHECKPOINT_PREFIX}<step> folder")
        return newest
    return path


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint folder, a model file, or a run folder's newest checkpoint
    (one clear CheckpointError for anything else, including NaN or infinite values)."""
    path = resolve_checkpoint_path(path)
    if not os.path.isdir(path):
        tensors, metadata = safetensors_io.load_file(path)
        return Checkpoint(path, tensors, metadata)
    tensors, metadata = safetensors_io.load_file(os.path.join(path, MODEL_FILE))
    optimizer = None
    if os.path.exists(os.path.join(path, OPTIMIZER_FILE)):
        arrays, optimizer_metadata = safetensors_io.load_file(os.path.join(path, OPTIMIZER_FILE))
        _check_finite(os.path.join(path, OPTIMIZER_FILE), arrays)
        if not {"param_groups", "scalars"} <= set(optimizer_metadata):
            raise CheckpointError(f"{path}/{OPTIMIZER_FILE}: damaged: its metadata lacks the param groups")
        optimizer = (arrays, optimizer_metadata)
    state_path = os.path.join(path, STATE_FILE)
    state = None
    if os.path.exists(state_path):
        try:
            with open(state_path) as f:
                state = _loads(f.read())
        except (ValueError, UnicodeDecodeError) as error:
            raise CheckpointError(f"{state_path}: unreadable ({error})") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"{state_path}: not a JSON object")
    return Checkpoint(path, tensors, metadata, optimizer, state)


__all__ = ["save_model", "save_checkpoint", "load_checkpoint", "Checkpoint", "CheckpointError", "latest_checkpoint",
           "list_checkpoints", "rotate_checkpoints", "remove_leftovers", "weights_fingerprint", "architecture_of"]

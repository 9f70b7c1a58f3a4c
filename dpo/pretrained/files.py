"""Hugging Face model folders on disk: config.json, the weights (one
model.safetensors, or model.safetensors.index.json + shards) and the tokenizer
files that travel with them. Nothing here downloads anything.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from .. import safetensors_io

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
# copied by save_pretrained from the folder the model was loaded from, when present
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
    "tokenizer.model", "added_tokens.json", "chat_template.jinja", "chat_template.json", "generation_config.json",
)


class PretrainedError(ValueError):
    """A model folder that cannot be loaded: one line naming the file, tensor or option."""


def check_folder(path) -> str:
    """`path` as a str if it is a folder; otherwise one line saying what is wrong."""
    if not isinstance(path, (str, os.PathLike)):
        raise PretrainedError(f"load_pretrained: path must be a folder path, got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.isdir(path):
        return path
    if os.path.exists(path):
        raise PretrainedError(f"{path}: not a folder; give the model folder holding config.json and the weights")
    parts = path.split("/")
    if len(parts) == 2 and all(parts) and not path.startswith((".", "~")):
        raise PretrainedError(
            f"{path}: no such folder; this looks like a Hugging Face hub id, and nothing is downloaded at run time: "
            f"download the folder first (huggingface-cli download {path} --local-dir DIR) and pass DIR"
        )
    raise PretrainedError(f"{path}: no such folder")


def read_config(folder: str) -> dict:
    path = os.path.join(folder, CONFIG_FILE)
    if not os.path.isfile(path):
        raise PretrainedError(f"{path}: missing; a model folder needs config.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PretrainedError(f"{path}: unreadable ({str(error).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise PretrainedError(f"{path}: not a JSON object")
    return config


def _load_safetensors(path: str) -> dict:
    try:
        tensors, _ = safetensors_io.load_file(path)
    except safetensors_io.CheckpointError as error:
        raise PretrainedError(str(error).splitlines()[0]) from None
    except OSError as error:
        raise PretrainedError(f"{path}: unreadable ({error.strerror or error})") from None
    return tensors


def read_weights(folder: str) -> dict:
    """{name: NumPy array} from model.safetensors, or from the shards the index lists."""
    single, index = os.path.join(folder, WEIGHTS_FILE), os.path.join(folder, INDEX_FILE)
    if os.path.isfile(single):
        return _load_safetensors(single)
    if not os.path.isfile(index):
        present = sorted(n for n in os.listdir(folder) if n.endswith((".bin", ".pt", ".pth", ".ckpt", ".h5")))
        hint = f" (found {', '.join(present)}: only safetensors is read)" if present else ""
        raise PretrainedError(f"{folder}: no {WEIGHTS_FILE} and no {INDEX_FILE}{hint}")
    try:
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise PretrainedError(f"{index}: unreadable index ({str(error).splitlines()[0]})") from None
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        path = os.path.join(folder, shard)
        if not os.path.isfile(path):
            raise PretrainedError(f"{path}: missing; {INDEX_FILE} lists this shard")
        loaded = _load_safetensors(path)
        for name, file in weight_map.items():
            if file == shard:
                if name not in loaded:
                    raise PretrainedError(f"{path}: tensor {name} is listed in {INDEX_FILE} but not in the shard")
                tensors[name] = loaded[name]
    return tensors


def write_folder(out_dir, config: dict, tensors: dict, source_folder: str | None) -> None:
    """config.json, model.safetensors (with the "format": "pt" metadata transformers
    expects) and the tokenizer files found in `source_folder`."""
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    safetensors_io.save_file(os.path.join(out_dir, WEIGHTS_FILE), arrays, metadata={"format": "pt"})
    stale = os.path.join(out_dir, INDEX_FILE)  # a folder holds one set of weights
    if os.path.isfile(stale):
        os.unlink(stale)
    with open(os.path.join(out_dir, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    if source_folder and os.path.abspath(source_folder) != os.path.abspath(out_dir):
        for name in TOKENIZER_FILES:
            path = os.path.join(source_folder, name)
            if os.path.isfile(path):
                shutil.copyfile(path, os.path.join(out_dir, name))

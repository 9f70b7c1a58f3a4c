"""Pretrained Hugging Face causal LMs on either backend: GPT-2, Llama, Qwen2.

    model = dpo.load_pretrained("path/to/SmolLM2-135M", backend="numpy", dtype="float32")
    logits = model(ids, attention_mask)       # (B, T, vocab), as TinyGPT
    model.save_pretrained("out/")             # transformers.AutoModelForCausalLM loads it

The folder is read as it is on disk (config.json, model.safetensors or a
sharded index, tokenizer files); nothing is downloaded.
"""

from __future__ import annotations

import functools
import os

from backends import Backend, get_backend

from . import files
from .base import PretrainedCausalLM
from .files import PretrainedError
from .gpt2 import GPT2Config, GPT2LMHeadModel
from .llama import LlamaConfig, LlamaForCausalLM, Qwen2ForCausalLM

ARCHITECTURES = {
    "GPT2LMHeadModel": (GPT2LMHeadModel, GPT2Config.from_hf),
    "LlamaForCausalLM": (LlamaForCausalLM, lambda raw, source: LlamaConfig.from_hf(raw, "LlamaForCausalLM", source)),
    "Qwen2ForCausalLM": (Qwen2ForCausalLM, lambda raw, source: LlamaConfig.from_hf(raw, "Qwen2ForCausalLM", source)),
}


def config_from_hf(raw: dict, source="config.json"):
    """(model class, parsed config) for a transformers config dict."""
    names = raw.get("architectures")
    if not isinstance(names, list) or len(names) != 1 or not isinstance(names[0], str):
        raise PretrainedError(f"{source}: 'architectures' must list one model class, got {names!r}; "
                              f"supported: {', '.join(ARCHITECTURES)}")
    if names[0] not in ARCHITECTURES:
        raise PretrainedError(f"{source}: architecture {names[0]!r} is not supported; "
                              f"supported: {', '.join(ARCHITECTURES)}")
    definition, parse = ARCHITECTURES[names[0]]
    return definition, parse(raw, source)


def context_length(path) -> int:
    """The context length (max_len) of the model in folder `path`, from its config.json alone
    (read again only when the file changes: training asks for it at every batch)."""
    folder = files.check_folder(path)
    config_path = os.path.join(folder, files.CONFIG_FILE)
    stamp = os.stat(config_path).st_mtime_ns if os.path.isfile(config_path) else None
    return _context_length(os.path.abspath(folder), stamp)


@functools.lru_cache(maxsize=16)
def _context_length(folder: str, stamp) -> int:
    _, config = config_from_hf(files.read_config(folder), source=f"{folder}/{files.CONFIG_FILE}")
    return config.max_len


def load_pretrained(path, backend="numpy", dtype="float32"):
    """The model in a local Hugging Face folder, on `backend` (a name, or a Backend,
    whose dtype and device then win over `dtype`) in float `dtype`. Every problem
    (no such folder, a hub id, an unsupported architecture or option, a missing or
    unreadable file, a tensor missing or of the wrong shape) is one line."""
    folder = files.check_folder(path)
    raw = files.read_config(folder)
    definition, config = config_from_hf(raw, source=f"{folder}/{files.CONFIG_FILE}")
    be = backend if isinstance(backend, Backend) else get_backend(backend, dtype=dtype)
    arrays = files.read_weights(folder)
    model = definition(config, backend=be)
    model.load_weights(arrays)
    model.source_folder = folder  # save_pretrained copies its tokenizer files
    return model


__all__ = ["load_pretrained", "PretrainedError", "PretrainedCausalLM", "GPT2LMHeadModel", "LlamaForCausalLM",
           "Qwen2ForCausalLM", "GPT2Config", "LlamaConfig", "ARCHITECTURES", "config_from_hf", "context_length"]

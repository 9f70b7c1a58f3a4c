"""What every pretrained causal LM shares: the forward contract,
weights in the checkpoint's own names and layout, and save_pretrained.

An architecture (gpt2.py, llama.py) subclasses `PretrainedCausalLM` and declares
its name mapping as data:

    file_prefix     the prefix transformers writes before the body's names
                    ("transformer." for GPT-2); files without it are accepted
    transposed      name suffixes stored as (in, out) in the file (GPT-2's Conv1D)
                    and as (out, in) here (nn.Linear)
    ignored         name suffixes of non-parameter tensors some files carry
                    (GPT-2's causal-mask buffers), skipped on load
    embedding_name  the input embedding, the one parameter a tied head shares

and implements `hidden_states(ids, attention_mask, cache)` and `logits(hidden)`.
"""

from __future__ import annotations

import copy

import numpy as np

from backends import ModelDefinition

from ..model_inputs import at_positions
from . import files
from .files import PretrainedError

HEAD_NAME = "lm_head.weight"


class PretrainedCausalLM(ModelDefinition):
    file_prefix = ""
    transposed: tuple = ()
    ignored: tuple = ()
    embedding_name = ""
    architecture = ""

    # ---- the forward contract -----------------------------------------------------------
    def forward(self, ids, attention_mask=None, cache=None, logits_at=None):
        """Logits (B, T, vocab) for token ids (B, T); `attention_mask` (B, T), 1 for tokens,
        0 for right padding; `cache` a dpo.kv_cache.KVCache (generation); `logits_at`
        (rows, cols) int64 tensors: the logits (N, vocab) at those N positions only."""
        return self.logits(at_positions(self.hidden_states(ids, attention_mask, cache), logits_at))

    def positions(self, T, cache, attention_mask=None):
        """(B or 1, T) int64 NumPy positions: 0..T-1, or the cache's per-row positions."""
        if cache is None:
            return np.arange(T, dtype=np.int64)[None]
        mask = None if attention_mask is None else type(self).backend.to_numpy(attention_mask)
        return cache.positions(T, mask)

    # ---- weights: the checkpoint's names and layout ---------------------------------------
    @property
    def tied(self) -> bool:
        return bool(self.config.tie_word_embeddings)

    def _model_name(self, name: str) -> str:
        if self.file_prefix and not name.startswith(self.file_prefix) and not name.startswith("lm_head."):
            return self.file_prefix + name
        return name

    def load_weights(self, arrays: dict, strict: bool = True):
        """Load {name: array} in the checkpoint's names and layout (as transformers'
        state_dict, or a file with or without the body prefix), cast to this model's
        dtype. A tied head may be present or absent. Every problem is one line."""
        backend = type(self).backend
        wanted = {name: tuple(t.shape) for name, t in self.state_dict().items()}
        model_arrays = {}
        for name, value in arrays.items():
            name = self._model_name(name)
            if name.endswith(self.ignored):
                continue
            value = np.asarray(backend.to_numpy(value) if backend.is_tensor(value) else value)
            if name.endswith(self.transposed) and value.ndim == 2:
                value = value.T
            if name in wanted and tuple(value.shape) != wanted[name]:
                shape = value.T.shape if name.endswith(self.transposed) else value.shape
                expect = wanted[name][::-1] if name.endswith(self.transposed) else wanted[name]
                raise PretrainedError(
                    f"{self.architecture}: tensor {name} has shape {tuple(shape)}, the config expects {tuple(expect)}"
                )
            model_arrays[name] = value
        if self.tied:
            if HEAD_NAME in model_arrays and self.embedding_name in model_arrays and not np.array_equal(
                    model_arrays[HEAD_NAME], model_arrays[self.embedding_name]):
                raise PretrainedError(
                    f"{self.architecture}: {HEAD_NAME} differs from {self.embedding_name} but the config ties them "
                    "(tie_word_embeddings); set it to false in config.json to keep both"
                )
            if self.embedding_name in model_arrays:
                model_arrays[HEAD_NAME] = model_arrays[self.embedding_name]
        missing = [n for n in wanted if n not in model_arrays]
        if missing and strict:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise PretrainedError(f"{self.architecture}: tensor {missing[0]} is missing from the weights{more}")
        unexpected = [n for n in model_arrays if n not in wanted]
        if unexpected and strict:
            more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
            raise PretrainedError(f"{self.architecture}: unexpected tensor {unexpected[0]} in the weights{more}")
        model_arrays = {k: v for k, v in model_arrays.items() if k in wanted}
        return backend.load_numpy_state(self, model_arrays, strict)

    def export_weights(self) -> dict:
        """{name: NumPy copy} in the checkpoint's names and layout (transformers'
        state_dict, less the tied head): what save_pretrained writes."""
        state = type(self).backend.state_to_numpy(self)
        if self.tied:
            state.pop(HEAD_NAME, None)
        return {k: (np.ascontiguousarray(v.T) if k.endswith(self.transposed) else v) for k, v in state.items()}

    def to_backend(self, backend):
        """A copy of this model on another backend (or dtype / device), same weights;
        LoRA adapters, where applied, come along (`dpo.lora.copy_adapters`)."""
        from ..lora import base_weights, copy_adapters

        copy_ = type(self).__bases__[0](self.config, backend=backend)  # the definition, built anew
        copy_.source_folder = getattr(self, "source_folder", None)
        copy_.load_weights(base_weights(self))
        return copy_adapters(self, copy_)

    def num_parameters(self) -> int:
        return sum(int(np.prod(p.shape)) for p in self.parameters())

    # ---- a Hugging Face folder -----------------------------------------------------------
    def hf_config(self) -> dict:
        """The config.json contents (each architecture writes out the values it uses)."""
        raise NotImplementedError

    def save_pretrained(self, out_dir, dtype: str | None = None) -> None:
        """Write config.json and model.safetensors (float32 unless `dtype` says
        "float64"), plus the tokenizer files of the folder the model was loaded from,
        so transformers' AutoModelForCausalLM.from_pretrained(out_dir) loads it."""
        dtype = dtype or "float32"
        if dtype not in ("float32", "float64"):
            raise ValueError(f"save_pretrained: dtype must be 'float32' or 'float64', got {dtype!r}")
        config = copy.deepcopy(self.hf_config())
        config["architectures"] = [self.architecture]
        config["dtype"] = dtype
        config.pop("torch_dtype", None)
        tensors = {k: v.astype(dtype) for k, v in self.export_weights().items()}
        files.write_folder(out_dir, config, tensors, getattr(self, "source_folder", None))

"""Reference log-probs on disk (TRL's `precompute_ref_log_probs`), reused only when nothing they depend on changed.

    logps = load_or_compute(out_dir, "train", fingerprint(reference, pairs, tokenizer, config), compute)

`out_dir/ref_logps_NAME.npz` holds the (n, 2) float64 array (chosen, rejected) and
the fingerprint it was computed under: a digest of each of
- `reference`: the reference weights (names, dtypes, shapes, bytes);
- `data`: the pairs, in order (their rows as JSON);
- `tokenizer`: the tokenizer's own fingerprint (vocabulary, special tokens, chat template);
- `lengths`: max_len, max_length, max_prompt_length, max_completion_length, truncation_mode,
  and ld_alpha and bf16, which change the values too.
A file whose fingerprint matches is reused; any difference recomputes and rewrites
it, and the message names what changed. A file that cannot be read is recomputed too.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np

from .tokenize import length_settings

PARTS = ("reference", "data", "tokenizer", "lengths")


def _digest(chunks) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk if isinstance(chunk, bytes) else str(chunk).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def fingerprint(reference, pairs, tokenizer, config) -> dict:
    """{part: hex digest} for the four parts of the module docstring."""
    weights = reference.export_weights()

    def weight_chunks():
        for name in sorted(weights):
            array = np.ascontiguousarray(weights[name])
            yield f"{name}:{array.dtype.str}:{array.shape}"
            yield array.tobytes()

    return {
        "reference": _digest(weight_chunks()),
        "data": _digest(json.dumps(pair.as_row(), sort_keys=True, ensure_ascii=False) for pair in pairs),
        "tokenizer": _digest([tokenizer.fingerprint()]),
        # ld_alpha weighs the log-probs and bf16 rounds them: both change the stored values
        "lengths": _digest([config.max_len, *length_settings(config), getattr(config, "ld_alpha", None),
                            getattr(config, "bf16", False)]),
    }


def cache_path(out_dir, name: str) -> str:
    return os.path.join(out_dir, f"ref_logps_{name}.npz")


def load_or_compute(out_dir, name: str, prints: dict, compute, notify=None) -> np.ndarray:
    """The cached (n, 2) log-probs when `out_dir/ref_logps_NAME.npz` has fingerprint `prints`;
    else `compute()`, written there. `notify(message)` (default: print to stderr) hears which."""
    notify = notify or (lambda message: print(message, file=sys.stderr))
    path = cache_path(out_dir, name)
    if os.path.isfile(path):
        try:
            with np.load(path) as saved:
                stored, logps = json.loads(str(saved["fingerprint"])), np.array(saved["logps"])
        except (OSError, ValueError, KeyError) as error:
            notify(f"{path}: cannot be read ({error}); recomputing the reference log-probs")
        else:
            changed = [part for part in PARTS if stored.get(part) != prints[part]]
            if not changed:
                notify(f"reusing the reference log-probs in {path}")
                return logps
            notify(f"{path}: the {', '.join(changed)} changed since it was written; recomputing the reference "
                   "log-probs")
    logps = np.asarray(compute(), dtype=np.float64)
    os.makedirs(out_dir, exist_ok=True)
    temporary = path + ".tmp.npz"
    np.savez(temporary, logps=logps, fingerprint=np.array(json.dumps(prints, sort_keys=True)))
    os.replace(temporary, path)
    notify(f"wrote the reference log-probs to {path}")
    return logps

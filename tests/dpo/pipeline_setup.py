"""Small shared setup for the pipeline tests: a tiny TinyGPT, a tiny DPOConfig, both backends.

The tiny model (hidden 16, 2 heads, 1 block) keeps every test in these files fast;
the pipeline code does not care about the size.
"""

import numpy as np
import pytest

from backends import get_backend
from dpo.config import DPOConfig
from dpo.data import make_preferences
from dpo.model import GPTConfig, TinyGPT, init_weights
from tests.backends.lm_batch import random_weights
from tests.conftest import require_cuda, require_torch

TINY = GPTConfig(hidden=16, heads=2, depth=1, max_len=96)
BACKENDS = ["numpy", "torch"]
TORCH_DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def backend(name, dtype="float64", device=None):
    """The backend `name` in `dtype` on `device`; skips with a reason when it is torch and torch
    is absent, or CUDA is asked for and there is none."""
    if name == "torch":
        require_torch()
    if device == "cuda":
        require_cuda()
    return get_backend(name, device=device, dtype=dtype)


def tiny_config(**changes) -> DPOConfig:
    """A DPOConfig on the tiny model: batches of 4, no warm-up (so step 1 already moves), lr 1e-2."""
    values = dict(model=TINY, batch_size=4, warmup_steps=0, lr=1e-2, max_steps=4, sft_steps=0)
    values.update(changes)
    return DPOConfig(**values)


def tiny_model(be, seed=0, perturb=None):
    """A TinyGPT on the tiny config; `perturb` (a seed) moves every weight off its initial value
    (LayerNorms no longer one/zero), the same numbers on every backend."""
    model = TinyGPT(TINY, backend=be)
    if perturb is not None:
        model.load_weights(random_weights(init_weights(TINY, seed), np.random.default_rng(perturb)))
    return model


def pairs(n=12):
    return list(make_preferences())[:n]


def numpy_of(model, t):
    return type(model).backend.to_numpy(t)


backend_names = pytest.mark.parametrize("backend_name", BACKENDS)

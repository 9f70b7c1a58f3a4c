"""Shared test helpers.

torch is optional: tests that compare with it call `require_torch()` (or use the
`torch` fixture), which skips with a reason where torch is not installed, so a
run without torch reports the skips instead of passing silently.
"""

import numpy as np
import pytest

TORCH_MISSING = "torch is not installed (install the extra: pip install 'minigrad-dpo[torch]')"


def require_torch():
    """Import torch or skip the calling test with a reason."""
    return pytest.importorskip("torch", reason=TORCH_MISSING)


def require_cuda():
    """Import torch and check for a CUDA device, or skip with a reason."""
    torch = require_torch()
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to torch (these tests run where a GPU is present)")
    return torch


@pytest.fixture
def torch():
    return require_torch()


@pytest.fixture
def rng():
    return np.random.default_rng(0)

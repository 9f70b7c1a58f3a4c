"""get_backend: names, caching, lazy torch import, and one clear error per bad argument."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import backends
from backends import get_backend, resolve_backend
from tests.conftest import require_torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_python(code):
    """Run `code` in a fresh interpreter at the repository root; return its stdout."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def one_line(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message, f"error message spans several lines: {message!r}"
    return message


# ---- names, dtypes, caching ------------------------------------------------------------
def test_numpy_backend_defaults():
    be = get_backend("numpy")
    assert (be.name, be.device, be.dtype_name) == ("numpy", "cpu", "float32")
    assert be.dtype == np.float32 and be.int_dtype == np.int64


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_backend_dtypes(dtype):
    torch = require_torch()
    be = get_backend("torch", dtype=dtype)
    assert (be.name, be.device, be.dtype_name) == ("torch", "cpu", dtype)
    assert be.dtype == getattr(torch, dtype) and be.int_dtype == torch.int64


def test_backends_are_cached_per_arguments():
    assert get_backend("numpy", dtype="float64") is get_backend("numpy", dtype="float64")
    assert get_backend("numpy", dtype="float64") is not get_backend("numpy", dtype="float32")
    assert get_backend("numpy", device="cpu") is get_backend("numpy")


def test_resolve_backend_accepts_none_names_and_backends():
    be = get_backend("numpy", dtype="float64")
    assert resolve_backend(be) is be
    assert resolve_backend(None) is get_backend("numpy")
    assert resolve_backend("numpy") is get_backend("numpy")
    assert get_backend(be) is be


# ---- errors: one line each, naming the bad value ---------------------------------------
@pytest.mark.parametrize("name", ["jax", "Numpy", "", None])
def test_unknown_backend_name_lists_the_known_ones(name):
    with pytest.raises(ValueError, match=r"unknown backend .*; choose one of: numpy, torch") as err:
        get_backend(name)
    assert repr(name) in one_line(err)


@pytest.mark.parametrize("name", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int64", "double", np.float64])
def test_unknown_dtype(name, dtype):
    with pytest.raises(ValueError, match=r"unknown dtype .*; choose one of: float32, float64") as err:
        get_backend(name, dtype=dtype)
    assert repr(dtype) in one_line(err)


def test_numpy_backend_refuses_cuda():
    with pytest.raises(ValueError, match=r"numpy backend runs on the CPU only; got device='cuda'") as err:
        get_backend("numpy", device="cuda")
    one_line(err)


def test_torch_cuda_where_cuda_is_absent():
    torch = require_torch()
    if torch.cuda.is_available():
        pytest.skip("CUDA is present here, so asking for it is not an error")
    with pytest.raises(RuntimeError, match=r"device='cuda' asked for, but CUDA is not available") as err:
        get_backend("torch", device="cuda")
    one_line(err)
    assert not backends.cuda_available()


def test_torch_unknown_device():
    require_torch()
    with pytest.raises(ValueError, match=r"unknown device 'tpu'; use 'cpu' or 'cuda'") as err:
        get_backend("torch", device="tpu")
    one_line(err)


def test_resolve_backend_rejects_other_types():
    with pytest.raises(TypeError, match=r"backend must be a name \(numpy, torch\) or a Backend, got int") as err:
        resolve_backend(3)
    one_line(err)


# ---- torch only when asked for ---------------------------------------------------------
def test_numpy_backend_and_tinygpt_never_import_torch():
    out = run_python("""
        import sys
        import numpy as np
        import backends
        from dpo.model import GPTConfig, TinyGPT
        be = backends.get_backend("numpy", dtype="float64")
        model = TinyGPT(GPTConfig(vocab_size=11, hidden=8, heads=2, depth=1, max_len=8), backend=be)
        logits = model(np.array([[1, 2, 3]]), np.array([[1, 1, 0]]))
        logits.sum().backward()
        print("torch imported:", "torch" in sys.modules)
    """)
    assert "torch imported: False" in out


def test_torch_is_imported_when_asked_for():
    require_torch()
    out = run_python("""
        import sys
        import backends
        backends.get_backend("numpy")
        before = "torch" in sys.modules
        backends.get_backend("torch")
        print("before:", before, "after:", "torch" in sys.modules)
    """)
    assert "before: False after: True" in out


def test_everything_numpy_works_without_torch_and_torch_says_how_to_install():
    out = run_python("""
        import sys
        sys.modules["torch"] = None  # from here on `import torch` raises ImportError, as if not installed
        import numpy as np
        import backends
        from dpo.model import GPTConfig, TinyGPT
        assert not backends.torch_available() and not backends.cuda_available()
        be = backends.get_backend("numpy", dtype="float64")
        model = TinyGPT(GPTConfig(vocab_size=11, hidden=8, heads=2, depth=1, max_len=8), backend=be)
        logits = model(np.array([[1, 2, 3], [4, 5, 0]]), np.array([[1, 1, 1], [1, 1, 0]]))
        logits.sum().backward()
        print("logits", logits.shape, "grad", model.head.weight.grad.shape)
        try:
            backends.get_backend("torch")
        except ImportError as e:
            print("ImportError:", e)
    """)
    assert "logits (2, 3, 11) grad (11, 8)" in out
    message = out.split("ImportError: ", 1)[1].strip()
    assert "\n" not in message
    assert "the torch backend needs PyTorch, which is not installed" in message
    assert "pip install 'minigrad-dpo[torch]'" in message

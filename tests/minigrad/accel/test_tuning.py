"""minigrad.accel.tune_process: the process settings an entry point may ask for, and
nothing of them without that call (importing minigrad, running every accelerated op,
creating the numpy backend change no environment variable and tune nothing).

Each case runs in a fresh interpreter, since the settings are once per process."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

PROBE = """
import json, os
import numpy as np
import minigrad
import minigrad.nn.functional as F
from minigrad.accel import tuning
environment = dict(os.environ)
x = minigrad.randn(2, 3, 8, requires_grad=True)
y = F.gelu(F.layer_norm(x, (8,)))
y = F.scaled_dot_product_attention(y[None], y[None], y[None], is_causal=True)[0]
(F.log_softmax(y, -1).sum() + F.token_logprobs(y, np.zeros((2, 3), dtype=np.int64)).sum()).backward()
F.embedding(np.array([0, 1]), minigrad.randn(3, 2, requires_grad=True)).sum().backward()
import backends
backends.get_backend("numpy")
untouched = dict(os.environ) == environment and tuning._applied is None
print(json.dumps({"applied": tuning.tune_process(), "untouched_by_the_library": untouched,
                  "omp": os.environ.get("OMP_WAIT_POLICY"),
                  "openblas": os.environ.get("OPENBLAS_THREAD_TIMEOUT")}))
"""


def probe(**env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "MINIGRAD_CPU_TUNING",
                          "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                          "GLIBC_TUNABLES", "MINIGRAD_KERNELS")}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**clean, **env}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_library_tunes_nothing_and_tune_process_applies_all_three_settings():
    out = probe()
    assert out["untouched_by_the_library"]
    assert out["omp"] == "passive"
    assert out["applied"]["openmp"] == "OMP_WAIT_POLICY=passive"
    if sys.platform.startswith("linux"):
        assert out["applied"]["malloc"] == "malloc mmap threshold 64 MiB, heap trimming off"
    # NumPy's wheel ships OpenBLAS on this platform; where it does not, the step says so
    assert out["applied"]["openblas"] in ("OPENBLAS_THREAD_TIMEOUT=4", "skipped: NumPy's OpenBLAS not found")


def test_a_setting_the_user_chose_is_left_alone():
    out = probe(OMP_WAIT_POLICY="active", OPENBLAS_THREAD_TIMEOUT="10", MALLOC_MMAP_THRESHOLD_="131072")
    assert out["omp"] == "active" and out["openblas"] == "10"
    assert out["applied"]["openmp"] == "left as set: OMP_WAIT_POLICY=active"
    assert out["applied"]["openblas"] == "left as set: OPENBLAS_THREAD_TIMEOUT=10"
    if sys.platform.startswith("linux"):
        assert out["applied"]["malloc"] == "left as set in the environment"


@pytest.mark.parametrize("variable", ["MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"])
def test_any_malloc_variable_the_user_set_leaves_malloc_alone(variable):
    if not sys.platform.startswith("linux"):
        pytest.skip("the malloc settings apply to glibc only")
    assert probe(**{variable: "1048576"})["applied"]["malloc"] == "left as set in the environment"


HEAP = """
import json, sys
import numpy as np
from minigrad.accel import tuning

def resident_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

if sys.argv[1] == "tuned":
    tuning.tune_process()
blocks = [np.ones(4 << 20) for _ in range(12)]  # 12 x 32 MiB, each below the mmap threshold: heap blocks
full = resident_mib()
del blocks
print(json.dumps({"full": full, "after_free": resident_mib()}))
"""


def test_tuned_process_keeps_its_freed_heap_for_the_next_step():
    """384 MiB freed at the top of the heap: glibc's default hands it back to the OS (it
    would be faulted in again next step); tuned, the heap keeps it."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the malloc settings apply to glibc only")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "MINIGRAD_CPU"))}
    runs = {}
    for mode in ("default", "tuned"):
        result = subprocess.run([sys.executable, "-c", HEAP, mode], cwd=ROOT, env=clean, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        runs[mode] = json.loads(result.stdout)
    assert runs["default"]["full"] - runs["default"]["after_free"] > 300
    assert runs["tuned"]["full"] - runs["tuned"]["after_free"] < 16


def test_switched_off_by_environment():
    out = probe(MINIGRAD_CPU_TUNING="0")
    assert out["applied"] == {"all": "off: MINIGRAD_CPU_TUNING=0"}
    assert out["omp"] is None and out["openblas"] is None


@pytest.mark.parametrize("value", ["0", "off", "false", "no"])
def test_enabled_reads_the_switch(monkeypatch, value):
    from minigrad.accel import tuning

    monkeypatch.setenv("MINIGRAD_CPU_TUNING", value)
    assert not tuning.enabled()
    monkeypatch.setenv("MINIGRAD_CPU_TUNING", "1")
    assert tuning.enabled()

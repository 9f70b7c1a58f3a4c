"""minigrad.cpu_tuning: the process settings applied before numba's first kernel.

Each case runs in a fresh interpreter, since the settings are once per process."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROBE = """
import json, os
import numpy as np
import minigrad
import minigrad.nn.functional as F
x = minigrad.randn(4, 8, requires_grad=True)
F.gelu(x).sum().backward()          # the first numba kernel tunes the process
from minigrad import cpu_tuning
tuned_by_the_ops = cpu_tuning._applied is not None
print(json.dumps({"applied": cpu_tuning.tune_process(), "tuned_by_the_ops": tuned_by_the_ops,
                  "omp": os.environ.get("OMP_WAIT_POLICY"),
                  "openblas": os.environ.get("OPENBLAS_THREAD_TIMEOUT")}))
"""


def probe(**env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "MINIGRAD_CPU_TUNING",
                          "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES", "MINIGRAD_KERNELS")}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**clean, **env}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_first_numba_kernel_applies_all_three_settings():
    out = probe()
    assert out["tuned_by_the_ops"]
    assert out["omp"] == "passive"
    assert out["applied"]["openmp"] == "OMP_WAIT_POLICY=passive"
    if sys.platform.startswith("linux"):
        assert out["applied"]["malloc"].startswith("malloc mmap threshold 64 MiB")
    # NumPy's wheel ships OpenBLAS on this platform; where it does not, the step says so
    assert out["applied"]["openblas"] in ("OPENBLAS_THREAD_TIMEOUT=4", "skipped: NumPy's OpenBLAS not found")


def test_a_setting_the_user_chose_is_left_alone():
    out = probe(OMP_WAIT_POLICY="active", OPENBLAS_THREAD_TIMEOUT="10", MALLOC_MMAP_THRESHOLD_="131072")
    assert out["omp"] == "active" and out["openblas"] == "10"
    assert out["applied"]["openmp"] == "left as set: OMP_WAIT_POLICY=active"
    assert out["applied"]["openblas"] == "left as set: OPENBLAS_THREAD_TIMEOUT=10"
    if sys.platform.startswith("linux"):
        assert out["applied"]["malloc"] == "left as set in the environment"


def test_switched_off_by_environment():
    out = probe(MINIGRAD_CPU_TUNING="0")
    assert out["applied"] == {"all": "off: MINIGRAD_CPU_TUNING=0"}
    assert out["omp"] is None and out["openblas"] is None


def test_the_numpy_kernel_path_does_not_tune():
    out = probe(MINIGRAD_KERNELS="numpy")
    assert not out["tuned_by_the_ops"]  # only the probe's own tune_process() call applied it


@pytest.mark.parametrize("value", ["0", "off", "false", "no"])
def test_enabled_reads_the_switch(monkeypatch, value):
    from minigrad import cpu_tuning

    monkeypatch.setenv("MINIGRAD_CPU_TUNING", value)
    assert not cpu_tuning.enabled()
    monkeypatch.setenv("MINIGRAD_CPU_TUNING", "1")
    assert cpu_tuning.enabled()

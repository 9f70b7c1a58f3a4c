"""DPO on minigrad against PyTorch CPU eager, side by side, in one run.

    .venv/bin/python -m benchmarks            # or: make bench
    .venv/bin/python -m benchmarks --quick    # fewer repeats, no cold start

What it measures (numpy backend = minigrad on its numba kernels; torch = PyTorch
eager on the CPU with its default thread count; float32; the two interleaved step
by step after a warm-up; medians of the repeats):

1. a full DPO training step on the twelve built-in triples at the default TinyGPT
   (vocab 260, hidden 64, heads 4, depth 2): ms per step, tokens per second, ratio;
2. the same at hidden 256, heads 8, depth 4, max_len 256 on 32 generated pairs of
   about 200 tokens;
3. useful FLOP/s of each (counted from the shapes, padding excluded: see
   workloads.training_flops) as a fraction of this machine's float32 matmul peak,
   measured in the same run by a 2048 x 2048 NumPy matmul;
4. scaling: step time as the batch doubles and as the sequence length doubles;
5. peak memory of each (resident set size of a fresh process running the step,
   minus its size before the first step);
6. cold start: `python -m dpo demo` with an empty numba cache, then warm;
7. (--cuda, where a GPU is present) item 2 on torch CUDA in float32 and with bf16
   autocast.

Results go to benchmarks/results/ (dpo.md, scaling.png, dpo.json). Nothing is
asserted: the numbers are the result. OMP_WAIT_POLICY is set to passive (unless
set): torch and numba each bring an OpenMP runtime, and in one process the idle
threads of one spin while the other works (see benchmarks/kernels.py).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before numba or torch load their OpenMP runtime

import numpy as np

from .timing import interleaved, median_ms, spread
from .workloads import DEFAULT_MODEL, LARGE_MODEL, default_pairs, dpo_workload, generated_pairs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")


# ---- the machine -------------------------------------------------------------------------
def machine_info() -> dict:
    import numba

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}
    try:
        import torch

        info["torch"] = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        info["torch"] = None
    return info


def matmul_peak(n: int = 2048, repeats: int = 7) -> float:
    """float32 GFLOP/s of an n x n NumPy matmul (the BLAS NumPy links), median of repeats."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


# ---- items 1-3: one step, both backends ---------------------------------------------------
def compare_step(label, model, pairs, repeats, peak_gflops, backends=("numpy", "torch")):
    """Rows of one table: each backend's median step time, tokens/s, useful GFLOP/s and % of peak."""
    workloads = {name: dpo_workload(name, model, pairs, label=label) for name in backends}
    times = interleaved({name: w.step for name, w in workloads.items()}, repeats=repeats, warmup=2)
    rows = []
    for name, w in workloads.items():
        seconds = statistics.median(times[name])
        gflops = w.flops / seconds / 1e9
        rows.append({"config": label, "backend": w.backend_label, "ms": 1e3 * seconds, "spread": spread(times[name]),
                     "tokens_per_s": w.tokens / seconds, "gflops": gflops, "peak_fraction": gflops / peak_gflops,
                     "batch": f"{w.shape[0]} x {w.shape[1]}", "tokens": w.tokens})
    if len(rows) == 2:
        rows[0]["ratio"] = rows[0]["ms"] / rows[1]["ms"]
    return rows


def large_pairs():
    """32 generated pairs of about 200 tokens (a 40-byte prompt, 160-byte completions)."""
    return generated_pairs(32, prompt_chars=40, completion_chars=160, seed=0)


# ---- item 4: scaling ----------------------------------------------------------------------------
def scaling(repeats):
    """Step time (ms) of both backends as the batch doubles (pairs of the built-in data,
    repeated) and as the sequence doubles (12 generated pairs of growing length)."""
    base = default_pairs()
    by_batch = []
    for n_pairs in (3, 6, 12, 24):
        pairs = (base * 2)[:n_pairs]
        rows = compare_step(f"{n_pairs} pairs", DEFAULT_MODEL, pairs, repeats, 1.0)
        by_batch.append((n_pairs, rows[0]["ms"], rows[1]["ms"], rows[0]["batch"]))
    by_length = []
    for total in (12, 24, 48, 96):
        completion = max(1, total // 2 - 1)
        pairs = generated_pairs(12, prompt_chars=max(1, total - completion - 4), completion_chars=completion, seed=1)
        rows = compare_step(f"T~{total}", DEFAULT_MODEL, pairs, repeats, 1.0)
        by_length.append((total, rows[0]["ms"], rows[1]["ms"], rows[0]["batch"]))
    return by_batch, by_length


def plot_scaling(by_batch, by_length, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed"
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, rows, xlabel in ((axes[0], by_batch, "preference pairs per step (T ~ 79)"),
                             (axes[1], by_length, "sequence length (12 pairs)")):
        xs = [r[0] for r in rows]
        ax.plot(xs, [r[1] for r in rows], "o-", label="minigrad (numpy backend)")
        ax.plot(xs, [r[2] for r in rows], "s-", label="PyTorch CPU eager")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ms per DPO step")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle("DPO step time, default TinyGPT, float32")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


# ---- item 5: peak memory ----------------------------------------------------------------------
PROBE = """
import json, resource, sys
sys.path.insert(0, {root!r})
from benchmarks.workloads import dpo_workload, DEFAULT_MODEL, LARGE_MODEL, default_pairs
from benchmarks.dpo_vs_torch import large_pairs
model, pairs = (DEFAULT_MODEL, default_pairs()) if {config!r} == "default" else (LARGE_MODEL, large_pairs())
w = dpo_workload({backend!r}, model, pairs)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(3):
    w.step()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"before_mib": before / 1024, "peak_mib": after / 1024}}))
"""


def peak_memory(backend, config):
    """(MiB the steps added to the process's peak RSS, peak RSS MiB) in a fresh process."""
    code = PROBE.format(root=ROOT, backend=backend, config=config)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe failed: {result.stderr.strip().splitlines()[-1:]}")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return data["peak_mib"] - data["before_mib"], data["peak_mib"]


# ---- item 6: cold start ---------------------------------------------------------------------
def demo_seconds(cache_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dpo", "demo"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=900)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"`python -m dpo demo` failed: {result.stderr.strip()[-300:]}")
    return seconds


def cold_start(warm_repeats=3):
    """(seconds of the first demo with an empty numba cache, median of warm demos after it)."""
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        cold = demo_seconds(cache)
        warm = statistics.median(demo_seconds(cache) for _ in range(warm_repeats))
    return cold, warm


# ---- profile ----------------------------------------------------------------------------------
def profile_numpy_step(steps=20, top=10):
    """The functions the numpy backend's default DPO step spends most time in (cProfile, own time)."""
    import cProfile
    import pstats

    w = dpo_workload("numpy", DEFAULT_MODEL, default_pairs())
    for _ in range(3):
        w.step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        w.step()
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = sum(v[2] for v in stats.values())
    rows = sorted(((v[2], k) for k, v in stats.items()), reverse=True)[:top]
    return [(f"{os.path.relpath(k[0], ROOT) if k[0].startswith(ROOT) else os.path.basename(k[0])}:{k[1]}({k[2]})",
             1e3 * own / steps, own / total) for own, k in rows]


# ---- report -----------------------------------------------------------------------------------
def step_table(rows):
    lines = ["| config | backend | batch (rows x T) | ms / step | tokens / s | useful GFLOP/s | % of matmul peak "
             "| numpy / torch |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"**{r['ratio']:.2f}x**" if "ratio" in r else ""
        lines.append(f"| {r['config']} | {r['backend']} | {r['batch']} | {r['ms']:.1f} {r['spread']} | "
                     f"{r['tokens_per_s']:,.0f} | {r['gflops']:.1f} | {100 * r['peak_fraction']:.0f}% | {ratio} |")
    return "\n".join(lines)


def run(quick=False, cuda=False, skip=()):
    repeats = 5 if quick else 11
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['cores']} cores; numpy {info['numpy']}, numba {info['numba']}, "
          f"torch {info['torch']}; OMP_WAIT_POLICY={info['OMP_WAIT_POLICY']}", flush=True)
    peak = matmul_peak()
    print(f"float32 matmul peak (2048^3, NumPy BLAS): {peak:.0f} GFLOP/s", flush=True)
    report = {"machine": info, "matmul_peak_gflops": peak}

    rows = compare_step("default TinyGPT, 12 triples", DEFAULT_MODEL, default_pairs(), repeats, peak)
    print(step_table(rows), flush=True)
    large_repeats = 3 if quick else 5
    rows += compare_step("hidden 256, depth 4, 32 pairs x ~200 tokens", LARGE_MODEL, large_pairs(), large_repeats,
                         peak)
    print(step_table(rows[2:]), flush=True)
    report["steps"] = rows

    if cuda:
        from backends import cuda_available

        if cuda_available():
            cuda_rows = []
            for autocast in (None, "bfloat16"):
                w = dpo_workload("torch", LARGE_MODEL, large_pairs(), device="cuda", autocast=autocast, label="large")
                t = interleaved({"cuda": w.step}, repeats=10, warmup=3)["cuda"]
                cuda_rows.append({"backend": w.backend_label, "ms": median_ms(t), "tokens_per_s": w.tokens /
                                  statistics.median(t)})
                print(f"{w.backend_label}: {median_ms(t):.2f} ms/step, {cuda_rows[-1]['tokens_per_s']:,.0f} tokens/s")
            report["cuda"] = cuda_rows
        else:
            print("--cuda: no CUDA device visible to torch; skipped")

    if "scaling" not in skip:
        by_batch, by_length = scaling(max(3, repeats // 2))
        report["scaling"] = {"batch": by_batch, "length": by_length}
        note = plot_scaling(by_batch, by_length, os.path.join(RESULTS, "scaling.png"))
        if note:
            print(note)
        for name, rows_ in (("batch", by_batch), ("length", by_length)):
            print(f"scaling by {name}: " + ", ".join(f"{x}: {a:.1f} vs {b:.1f} ms" for x, a, b, _ in rows_))
    if "memory" not in skip:
        memory = {}
        for config in ("default", "large"):
            for backend in ("numpy", "torch"):
                memory[f"{config}/{backend}"] = peak_memory(backend, config)
                print(f"peak memory {config}/{backend}: +{memory[f'{config}/{backend}'][0]:.0f} MiB "
                      f"(peak RSS {memory[f'{config}/{backend}'][1]:.0f} MiB)", flush=True)
        report["memory"] = memory
    if "cold" not in skip and not quick:
        cold, warm = cold_start()
        report["cold_start"] = {"cold_s": cold, "warm_s": warm}
        print(f"python -m dpo demo: cold (empty numba cache) {cold:.1f} s, warm {warm:.1f} s", flush=True)
    report["profile"] = profile_numpy_step()
    write_markdown(report)
    return report


def write_markdown(report):
    os.makedirs(RESULTS, exist_ok=True)
    m = report["machine"]
    lines = ["# DPO benchmark: minigrad (numpy backend) vs PyTorch CPU eager", "",
             "Reproduce: `make bench` (or `.venv/bin/python -m benchmarks`).", "",
             f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, NumPy {m['numpy']}, "
             f"numba {m['numba']}, torch {m['torch']}. float32. Both backends interleaved in one process, "
             "after a warm-up; medians (± half the interquartile range).", "",
             f"float32 matmul peak of this machine (NumPy, 2048³): **{report['matmul_peak_gflops']:.0f} GFLOP/s**.",
             "", "## One DPO training step (forward + backward + AdamW, cached reference log-probs)", "",
             step_table(report["steps"]), "",
             "numpy / torch < 1 means minigrad is faster.", ""]
    if "cuda" in report:
        lines += ["## torch on CUDA (large config)", "", "| backend | ms / step | tokens / s |", "|---|---|---|"]
        lines += [f"| {r['backend']} | {r['ms']:.2f} | {r['tokens_per_s']:,.0f} |" for r in report["cuda"]]
        lines.append("")
    if "scaling" in report:
        lines += ["## Scaling (default TinyGPT)", "", "![scaling](scaling.png)", "",
                  "| pairs per step | batch | numpy ms | torch ms | numpy / torch |", "|---|---|---|---|---|"]
        lines += [f"| {x} | {shape} | {a:.1f} | {b:.1f} | {a / b:.2f} |" for x, a, b, shape in
                  report["scaling"]["batch"]]
        lines += ["", "| sequence length | batch | numpy ms | torch ms | numpy / torch |", "|---|---|---|---|---|"]
        lines += [f"| ~{x} | {shape} | {a:.1f} | {b:.1f} | {a / b:.2f} |" for x, a, b, shape in
                  report["scaling"]["length"]]
        lines.append("")
    if "memory" in report:
        lines += ["## Peak memory (a fresh process per row: RSS added by three steps, and peak RSS)", "",
                  "| config / backend | added by the steps (MiB) | peak RSS (MiB) |", "|---|---|---|"]
        lines += [f"| {k} | {a:.0f} | {b:.0f} |" for k, (a, b) in report["memory"].items()]
        lines.append("")
    if "cold_start" in report:
        c = report["cold_start"]
        lines += ["## Cold start", "", f"`python -m dpo demo` with an empty numba cache: **{c['cold_s']:.1f} s**; "
                  f"warm (cache filled): **{c['warm_s']:.1f} s** (median of 3). Both include Python start-up and "
                  "imports.", ""]
    lines += ["## Where the numpy backend's default step spends its time (cProfile, own time)", "",
              "| function | ms per step | share |", "|---|---|---|"]
    lines += [f"| `{name}` | {ms:.2f} | {100 * share:.0f}% |" for name, ms, share in report["profile"]]
    lines.append("")
    with open(os.path.join(RESULTS, "dpo.md"), "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(RESULTS, "dpo.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    print(f"wrote {os.path.relpath(os.path.join(RESULTS, 'dpo.md'), ROOT)}")

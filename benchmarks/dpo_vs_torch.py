"""DPO on minigrad against PyTorch CPU eager, side by side, in one run.

    .venv/bin/python -m benchmarks            # or: make bench
    .venv/bin/python -m benchmarks --quick    # fewer repeats, no cold start

What it measures (numpy backend = minigrad on its numba kernels; torch = PyTorch
eager on the CPU with its default threads; float32; medians):

1. a full DPO training step on the twelve built-in triples at the default TinyGPT
   (vocab 260, hidden 64, heads 4, depth 2): ms per step, tokens per second, ratio;
2. the same at hidden 256, heads 8, depth 4, max_len 256 on 32 generated pairs of
   about 200 tokens;
3. useful FLOP/s of each (counted from the shapes, padding excluded: see
   workloads.training_flops) as a fraction of this machine's float32 matmul peak,
   measured in the same run by a 2048 x 2048 NumPy matmul;
4. scaling: step time as the batch doubles and as the sequence length doubles;
5. peak memory of each (the worker's peak resident set size, and how much the
   steps added to what the process held after setting up);
6. cold start: `python -m dpo demo` with an empty numba cache, then warm;
7. (--cuda, where a GPU is present) item 2 on torch CUDA in float32 and with bf16
   autocast;
8. items 1 and 2 on numpy without `minigrad.accel.tune_process()` beside the tuned
   step: what a library user who never calls it gets.

Each backend runs in its own worker process, the two taking turns in blocks of
steps (`side_by_side.py`), so both see the same machine load and neither shares a
threading runtime with the other. Results go to benchmarks/results/ (dpo.md,
scaling.png, dpo.json). Nothing is asserted: the numbers are the result.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from .side_by_side import SideBySide
from .timing import median_ms, spread

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")

DEFAULT = {"model": "default", "pairs": {"kind": "builtin"}, "label": "default TinyGPT, 12 triples"}
LARGE = {"model": "large", "pairs": {"kind": "large"}, "label": "hidden 256, depth 4, 32 pairs x ~200 tokens"}


# ---- the machine -------------------------------------------------------------------------
def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    """CPU, cores and versions, read without importing torch or numba into this process."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "python": platform.python_version(), "numpy": np.__version__,
            "numba": _version("numba"), "torch": _version("torch")}


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


# ---- items 1-3 and 5: one step, both backends ------------------------------------------------
def compare_step(workload: dict, rounds: int, block: int, peak_gflops: float, backends=("numpy", "torch")):
    """Rows of one table: each backend's median step time, tokens/s, useful GFLOP/s, % of
    the matmul peak and peak memory, measured side by side in worker processes."""
    specs = {name: {"backend": name, **workload} for name in backends}
    with SideBySide(specs) as run:
        times = run.interleaved(rounds=rounds, block=block)
        memory = {name: run.memory(name) for name in backends}
        info = {name: run.info(name) for name in backends}
    rows = []
    for name in backends:
        seconds = statistics.median(times[name])
        gflops = info[name]["flops"] / seconds / 1e9
        rows.append({"config": workload["label"], "backend": info[name]["backend"], "ms": 1e3 * seconds,
                     "spread": spread(times[name]), "samples": len(times[name]),
                     "tokens_per_s": info[name]["tokens"] / seconds, "gflops": gflops,
                     "peak_fraction": gflops / peak_gflops, "batch": " x ".join(map(str, info[name]["shape"])),
                     "tokens": info[name]["tokens"], "peak_rss_mib": memory[name]["peak_rss_mib"],
                     "added_mib": memory[name]["peak_rss_mib"] - memory[name]["rss_before_mib"]})
    if len(rows) == 2:
        rows[0]["ratio"] = rows[0]["ms"] / rows[1]["ms"]
    return rows


# ---- item 8: without the process tuning ------------------------------------------------------
def untuned(workload: dict, rounds: int, block: int) -> dict:
    """The numpy step with `minigrad.accel.tune_process()` (what the CLI and the other rows
    measure) and without it (what a library user who never calls it gets), side by side."""
    specs = {"tuned": {"backend": "numpy", **workload}, "untuned": {"backend": "numpy", "tune_process": False,
                                                                   **workload}}
    with SideBySide(specs) as run:
        times = run.interleaved(rounds=rounds, block=block)
    row = {"config": workload["label"]}
    for name in specs:
        row[f"{name}_ms"], row[f"{name}_spread"] = median_ms(times[name]), spread(times[name])
    return row


def untuned_table(rows) -> str:
    lines = ["| config | numpy, tune_process() | numpy, untuned | untuned / tuned |", "|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['tuned_ms']:.1f} {r['tuned_spread']} ms | {r['untuned_ms']:.1f} "
              f"{r['untuned_spread']} ms | {r['untuned_ms'] / r['tuned_ms']:.2f}x |" for r in rows]
    return "\n".join(lines)


# ---- item 4: scaling ----------------------------------------------------------------------------
def scaling(rounds, block):
    """Step time (ms) of both backends as the batch doubles (the built-in pairs, repeated)
    and as the sequence doubles (12 generated pairs of growing length)."""
    by_batch = []
    for n_pairs in (3, 6, 12, 24):
        workload = {"model": "default", "pairs": {"kind": "builtin", "count": n_pairs}, "label": f"{n_pairs} pairs"}
        rows = compare_step(workload, rounds, block, 1.0)
        by_batch.append((n_pairs, rows[0]["ms"], rows[1]["ms"], rows[0]["batch"]))
    by_length = []
    for total in (12, 24, 48, 96):
        completion = max(1, total // 2 - 1)
        pairs = {"kind": "generated", "count": 12, "prompt_chars": max(1, total - completion - 4),
                 "completion_chars": completion, "seed": 1}
        rows = compare_step({"model": "default", "pairs": pairs, "label": f"T~{total}"}, rounds, block, 1.0)
        by_length.append((total, rows[0]["ms"], rows[1]["ms"], rows[0]["batch"]))
    return by_batch, by_length


def plot_scaling(by_batch, by_length, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install -e '.[plots]')"
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
PROFILE = """
import cProfile, json, os, pstats, sys
from benchmarks.workloads import dpo_workload, DEFAULT_MODEL, default_pairs
w = dpo_workload("numpy", DEFAULT_MODEL, default_pairs())
for _ in range(3):
    w.step()
profiler = cProfile.Profile()
profiler.enable()
for _ in range({steps}):
    w.step()
profiler.disable()
stats = pstats.Stats(profiler).stats
print(json.dumps([[k[0], k[1], k[2], v[2]] for k, v in stats.items()]))
"""


def profile_numpy_step(steps=20, top=10):
    """The functions the numpy backend's default DPO step spends most time in (cProfile,
    own time), in a worker process of its own."""
    result = subprocess.run([sys.executable, "-c", PROFILE.format(steps=steps)], cwd=ROOT, capture_output=True,
                            text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"profile failed: {result.stderr.strip()[-300:]}")
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    total = sum(own for *_, own in stats)
    rows = sorted(stats, key=lambda r: -r[3])[:top]
    return [(f"{os.path.relpath(path, ROOT) if path.startswith(ROOT) else os.path.basename(path)}:{line}({name})",
             1e3 * own / steps, own / total) for path, line, name, own in rows]


# ---- report -----------------------------------------------------------------------------------
def step_table(rows):
    lines = ["| config | backend | batch (rows x T) | ms / step | tokens / s | useful GFLOP/s | % of matmul peak "
             "| peak RSS (MiB) | numpy / torch |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"**{r['ratio']:.2f}x**" if "ratio" in r else ""
        lines.append(f"| {r['config']} | {r['backend']} | {r['batch']} | {r['ms']:.1f} {r['spread']} | "
                     f"{r['tokens_per_s']:,.0f} | {r['gflops']:.1f} | {100 * r['peak_fraction']:.0f}% | "
                     f"{r['peak_rss_mib']:,.0f} (+{r['added_mib']:,.0f}) | {ratio} |")
    return "\n".join(lines)


def cuda_rows(rounds):
    """Item 7: the large config on torch CUDA, float32 and bf16 autocast (one worker each)."""
    rows = []
    for autocast in (None, "bfloat16"):
        spec = {"backend": "torch", "device": "cuda", "autocast": autocast, **LARGE}
        with SideBySide({"cuda": spec}) as run:
            t = run.interleaved(rounds=rounds, block=6)["cuda"]
            info = run.info("cuda")
        rows.append({"backend": info["backend"], "ms": median_ms(t), "tokens_per_s": info["tokens"] /
                     statistics.median(t)})
        print(f"{info['backend']}: {median_ms(t):.2f} ms/step, {rows[-1]['tokens_per_s']:,.0f} tokens/s", flush=True)
    return rows


def run(quick=False, cuda=False, skip=()):
    rounds, block = (5, 5) if quick else (10, 6)
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['cores']} cores; numpy {info['numpy']}, numba {info['numba']}, "
          f"torch {info['torch']}", flush=True)
    peak = matmul_peak()
    print(f"float32 matmul peak (2048^3, NumPy BLAS): {peak:.0f} GFLOP/s", flush=True)
    report = {"machine": info, "matmul_peak_gflops": peak}

    rows = compare_step(DEFAULT, rounds, block, peak)
    print(step_table(rows), flush=True)
    rows += compare_step(LARGE, 3 if quick else 4, 3, peak)
    print(step_table(rows[2:]), flush=True)
    report["steps"] = rows

    if "untuned" not in skip:
        report["untuned"] = [untuned(DEFAULT, rounds, block), untuned(LARGE, 3 if quick else 4, 3)]
        print(untuned_table(report["untuned"]), flush=True)
    if cuda:
        if _version("torch") is None:
            print("--cuda: torch is not installed; skipped")
        else:
            probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                                   capture_output=True, text=True)
            if probe.stdout.strip() == "True":
                report["cuda"] = cuda_rows(rounds)
            else:
                print("--cuda: no CUDA device visible to torch; skipped")

    if "scaling" not in skip:
        by_batch, by_length = scaling(max(3, rounds // 2), 4)
        report["scaling"] = {"batch": by_batch, "length": by_length}
        os.makedirs(RESULTS, exist_ok=True)
        note = plot_scaling(by_batch, by_length, os.path.join(RESULTS, "scaling.png"))
        if note:
            print(note)
        for name, rows_ in (("batch", by_batch), ("length", by_length)):
            print(f"scaling by {name}: " + ", ".join(f"{x}: {a:.1f} vs {b:.1f} ms" for x, a, b, _ in rows_))
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
             f"numba {m['numba']}, torch {m['torch']} (its default threads). float32. Each backend in its own "
             "worker process, the two taking turns in blocks of steps after a warm-up; medians (± half the "
             "interquartile range).", "",
             f"float32 matmul peak of this machine (NumPy, 2048³): **{report['matmul_peak_gflops']:.0f} GFLOP/s**.",
             "", "## One DPO training step (forward + backward + AdamW, cached reference log-probs)", "",
             step_table(report["steps"]), "",
             "numpy / torch < 1 means minigrad is faster. Peak RSS is the worker's whole peak resident memory "
             "(Python, the libraries, the model); in brackets, what the training steps added to it.", ""]
    if "untuned" in report:
        lines += ["## Without the process tuning", "",
                  "What a library user who imports minigrad and never calls `minigrad.accel.tune_process()` gets "
                  "(the CLI, the demo and the rows above call it; docs/kernels.md says what it changes). numpy "
                  "backend in two worker processes, one tuned and one not, side by side.", "",
                  untuned_table(report["untuned"]), ""]
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

"""Fused-ops benchmark: LayerNorm, GELU and embedding, forward + backward, float32.

    .venv/bin/python -m benchmarks.fused_ops [--repeats 15] [--sizes tinygpt,large]

For each op and size, three implementations take turns, each in its own worker
process (each turn 30 ms of untimed calls, then a block of timed ones; see
`benchmarks.kernels` and `side_by_side.py` for why), after a warm-up that also compiles the numba
kernels: minigrad on its numba kernels, minigrad on the NumPy references
(`MINIGRAD_KERNELS=numpy`), and torch on the CPU with its default threads. Each
is the public op with autograd on leaf inputs, followed by backward:

    layer_norm  F.layer_norm(x, (C,), w, b) of x (B, T, C)        (TinyGPT: ln1, ln2, ln_f)
    gelu        F.gelu(x) of x (B, T, 4C), exact (erf)              (TinyGPT: the MLP)
    gelu_tanh   F.gelu(x, approximate="tanh")
    embedding   F.embedding(ids, weight) of ids (B, T) into (V, C)  (TinyGPT: tok)

Nothing is asserted: the table is the result.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import minigrad
import minigrad.nn.functional as F
from minigrad import accel as kernels

from .side_by_side import OP_SETTLE_S, implementations, time_op
from .timing import median_ms, spread

SIZES = {
    "tiny": {"B": 2, "T": 8, "C": 4, "V": 11},  # a smoke test of the harness
    "tinygpt": {"B": 24, "T": 79, "C": 64, "V": 260},
    "large": {"B": 8, "T": 512, "C": 768, "V": 32_000},
}
DTYPE = np.float32
BLOCKS = {"tiny": 2, "tinygpt": 5, "large": 2}  # per turn: untimed calls (side_by_side.py), then BLOCKS - 1 timed


def _candidates(minigrad_run, torch_run):
    candidates = {"numba": lambda: minigrad_run("numba"), "numpy": lambda: minigrad_run("numpy")}
    if torch_run is not None:
        candidates["torch"] = torch_run
    return candidates


def layer_norm_candidates(size, rng, torch):
    B, T, C = size["B"], size["T"], size["C"]
    x = rng.standard_normal((B, T, C)).astype(DTYPE)
    w, b = (1 + 0.1 * rng.standard_normal(C)).astype(DTYPE), (0.1 * rng.standard_normal(C)).astype(DTYPE)
    grad = rng.standard_normal((B, T, C)).astype(DTYPE)

    def minigrad_run(mode):
        with kernels.kernel_mode(mode):
            leaves = [minigrad.from_numpy(a).requires_grad_() for a in (x, w, b)]
            F.layer_norm(leaves[0], (C,), leaves[1], leaves[2]).backward(gradient=grad)

    torch_run = None
    if torch is not None:
        t_x, t_w, t_b, t_grad = (torch.from_numpy(a) for a in (x, w, b, grad))

        def torch_run():
            leaves = [a.detach().requires_grad_() for a in (t_x, t_w, t_b)]
            torch.nn.functional.layer_norm(leaves[0], (C,), leaves[1], leaves[2]).backward(t_grad)

    return _candidates(minigrad_run, torch_run)


def gelu_candidates(size, rng, torch, approximate="none"):
    B, T, C = size["B"], size["T"], 4 * size["C"]
    x = rng.standard_normal((B, T, C)).astype(DTYPE)
    grad = rng.standard_normal((B, T, C)).astype(DTYPE)

    def minigrad_run(mode):
        with kernels.kernel_mode(mode):
            leaf = minigrad.from_numpy(x).requires_grad_()
            F.gelu(leaf, approximate=approximate).backward(gradient=grad)

    torch_run = None
    if torch is not None:
        t_x, t_grad = torch.from_numpy(x), torch.from_numpy(grad)

        def torch_run():
            leaf = t_x.detach().requires_grad_()
            torch.nn.functional.gelu(leaf, approximate=approximate).backward(t_grad)

    return _candidates(minigrad_run, torch_run)


def gelu_tanh_candidates(size, rng, torch):
    return gelu_candidates(size, rng, torch, approximate="tanh")


def embedding_candidates(size, rng, torch):
    B, T, C, V = size["B"], size["T"], size["C"], size["V"]
    ids = rng.integers(0, V, size=(B, T))
    weight = rng.standard_normal((V, C)).astype(DTYPE)
    grad = rng.standard_normal((B, T, C)).astype(DTYPE)

    def minigrad_run(mode):
        with kernels.kernel_mode(mode):
            leaf = minigrad.from_numpy(weight).requires_grad_()
            F.embedding(ids, leaf).backward(gradient=grad)

    torch_run = None
    if torch is not None:
        t_ids, t_weight, t_grad = torch.from_numpy(ids), torch.from_numpy(weight), torch.from_numpy(grad)

        def torch_run():
            leaf = t_weight.detach().requires_grad_()
            torch.nn.functional.embedding(t_ids, leaf).backward(t_grad)

    return _candidates(minigrad_run, torch_run)


OPS = {
    "layer_norm": (layer_norm_candidates, lambda s: f"x ({s['B']}, {s['T']}, {s['C']})"),
    "gelu": (gelu_candidates, lambda s: f"x ({s['B']}, {s['T']}, {4 * s['C']})"),
    "gelu_tanh": (gelu_tanh_candidates, lambda s: f"x ({s['B']}, {s['T']}, {4 * s['C']})"),
    "embedding": (embedding_candidates, lambda s: f"ids ({s['B']}, {s['T']}) -> ({s['V']}, {s['C']})"),
}


def measure(op, size_name, repeats):
    times, threads = time_op("benchmarks.fused_ops", op, size_name, rounds=repeats, block=BLOCKS[size_name])
    return {"op": op, "size": size_name, "ms": {k: median_ms(v) for k, v in times.items()},
            "spread": {k: spread(v) for k, v in times.items()}, "threads": threads}


def print_table(rows):
    header = (f"{'op (fwd+bwd)':<14}{'size':<34}{'numba ms':>10}{'numpy ms':>10}{'torch ms':>10}"
              f"{'numpy/numba':>13}{'torch/numba':>13}")
    print(header)
    print("-" * len(header))
    for row in rows:
        ms = row["ms"]
        numba_ms, numpy_ms, torch_ms = ms["numba"], ms["numpy"], ms.get("torch")
        torch_cell = f"{torch_ms:.3f}" if torch_ms else "n/a"
        torch_ratio = f"{torch_ms / numba_ms:.2f}x" if torch_ms else "n/a"
        print(f"{row['op']:<14}{OPS[row['op']][1](SIZES[row['size']]):<34}{numba_ms:>10.3f}{numpy_ms:>10.3f}"
              f"{torch_cell:>10}{numpy_ms / numba_ms:>12.2f}x{torch_ratio:>13}")
    print("\nratios > 1 mean the numba kernels are faster; spreads (interquartile half-range, ms):")
    for row in rows:
        print(f"  {row['op']:<14}{row['size']:<9}" + "  ".join(f"{k} {v}" for k, v in row["spread"].items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per implementation (median reported)")
    parser.add_argument("--sizes", default="tinygpt,large", help="comma-separated: tinygpt, large, tiny (a smoke test)")
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma-separated: {', '.join(OPS)}")
    args = parser.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    ops = [s.strip() for s in args.ops.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES] + [o for o in ops if o not in OPS]
    if unknown:
        parser.error(f"unknown size(s) or op(s) {unknown}; sizes: {list(SIZES)}, ops: {list(OPS)}")
    print(f"fused-ops benchmark: float32, forward + backward through autograd; {args.repeats} turns per "
          f"implementation (each turn {OP_SETTLE_S * 1e3:.0f} ms of untimed calls, then the timed ones), medians; "
          f"each implementation in its "
          f"own process ({', '.join(implementations())}); {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = [measure(op, size_name, args.repeats) for size_name in sizes for op in ops]
    print("threads: " + ", ".join(sorted(set(rows[0]["threads"].values()))))
    print_table(rows)


if __name__ == "__main__":
    main()

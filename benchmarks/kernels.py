"""Kernels benchmark: attention and token log-probs, forward + backward, float32.

    .venv/bin/python -m benchmarks.kernels [--repeats 7] [--sizes tinygpt,large]

For each op and size, three implementations take turns, each in its own worker
process (`side_by_side.time_op`; each turn starts with 30 ms of untimed calls,
`OP_SETTLE_S`, so that the threads the previous worker left spinning are asleep
before timing starts): minigrad on its numba kernels, minigrad on the NumPy
references (`MINIGRAD_KERNELS=numpy`), both with `minigrad.accel.tune_process()` applied, and torch on
the CPU with its default threads and settings. Each is the public op with
autograd on leaf inputs: `F.scaled_dot_product_attention(q, k, v,
is_causal=True)` with q, k, v strided slices of one permuted (B, T, 3, H, D) array
as in TinyGPT, and `F.token_logprobs` (torch: `-F.cross_entropy(reduction="none")`),
each followed by backward. Peak memory is Python's tracemalloc over one forward +
backward in this process (NumPy arrays are traced; torch's are not, so torch has
none); the inputs exist before it starts. Nothing is asserted: the table is the
result.

Separate processes, because in one process torch and numba share one OpenMP
runtime (both load a `libgomp.so.1`, and the first one loaded serves both): its
threads then either spin while the other library works or wait passively, which
slows torch (a DPO step: 25 ms active, 37 ms passive), and each implementation
also finds the caches and thread pools as the previous one left them. Measured at
TinyGPT size with all three in one process, call by call, the numba attention
took 4.8 ms, and 2.4 ms run alone.
"""

from __future__ import annotations

import argparse
import os
import tracemalloc

import numpy as np

import minigrad
import minigrad.nn.functional as F
from minigrad import accel as kernels

from .side_by_side import OP_SETTLE_S, implementations, time_op
from .timing import median_ms, spread

SIZES = {
    "tiny": {"B": 2, "H": 2, "T": 8, "D": 4, "V": 11},  # a smoke test of the harness
    "tinygpt": {"B": 24, "H": 4, "T": 96, "D": 16, "V": 260},
    "large": {"B": 8, "H": 8, "T": 512, "D": 64, "V": 32_000},
}
DTYPE = np.float32
BLOCKS = {"tiny": 2, "tinygpt": 5, "large": 2}  # per turn: untimed calls (side_by_side.py), then BLOCKS - 1 timed


def attention_candidates(size, rng, torch):
    B, H, T, D = size["B"], size["H"], size["T"], size["D"]
    # q, k, v laid out as in TinyGPT: strided slices of one permuted (B, T, 3, H, D) array
    q, k, v = rng.standard_normal((B, T, 3, H, D)).astype(DTYPE).transpose(2, 0, 3, 1, 4)
    grad = rng.standard_normal((B, H, T, D)).astype(DTYPE)

    def minigrad_run(mode):
        def run():
            with kernels.kernel_mode(mode):
                leaves = [minigrad.from_numpy(a).requires_grad_() for a in (q, k, v)]
                out = F.scaled_dot_product_attention(*leaves, is_causal=True)
                out.backward(gradient=grad)
        return run

    candidates = {"numba": minigrad_run("numba"), "numpy": minigrad_run("numpy")}
    if torch is not None:
        t_qkv, t_grad = [torch.from_numpy(a) for a in (q, k, v)], torch.from_numpy(grad)

        def torch_run():
            leaves = [a.detach().requires_grad_() for a in t_qkv]
            out = torch.nn.functional.scaled_dot_product_attention(*leaves, is_causal=True)
            out.backward(t_grad)

        candidates["torch"] = torch_run
    return candidates


def token_logprobs_candidates(size, rng, torch):
    B, T, V = size["B"], size["T"], size["V"]
    logits = rng.standard_normal((B, T, V)).astype(DTYPE)
    targets = rng.integers(0, V, size=(B, T))
    targets[:, : T // 4] = -100  # prompt positions, ignored as in DPO
    grad = rng.standard_normal((B, T)).astype(DTYPE)

    def minigrad_run(mode):
        def run():
            with kernels.kernel_mode(mode):
                leaf = minigrad.from_numpy(logits).requires_grad_()
                F.token_logprobs(leaf, targets).backward(gradient=grad)
        return run

    candidates = {"numba": minigrad_run("numba"), "numpy": minigrad_run("numpy")}
    if torch is not None:
        t_logits, t_targets, t_grad = (torch.from_numpy(a) for a in (logits, targets, grad))

        def torch_run():
            leaf = t_logits.detach().requires_grad_()
            out = -torch.nn.functional.cross_entropy(leaf.view(-1, V), t_targets.view(-1), reduction="none")
            out.backward(t_grad.view(-1))

        candidates["torch"] = torch_run
    return candidates


def peak_mib(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


OPS = {"attention": (attention_candidates,), "token_logprobs": (token_logprobs_candidates,)}


def measure(op, size_name, repeats):
    """A table row: each implementation's median ms in its own worker process, and the
    peak traced memory of the two minigrad paths (in this process)."""
    times, threads = time_op("benchmarks.kernels", op, size_name, rounds=repeats, block=BLOCKS[size_name])
    row = {"op": op, "size": size_name, "ms": {k: median_ms(v) for k, v in times.items()},
           "spread": {k: spread(v) for k, v in times.items()}, "threads": threads}
    candidates = OPS[op][0](SIZES[size_name], np.random.default_rng(0), None)
    for name in ("numba", "numpy"):
        candidates[name]()  # loads the compiled kernels first: their loading is not the op's memory
    row["peak"] = {k: peak_mib(candidates[k]) for k in ("numba", "numpy")}
    return row


def describe(op, size_name):
    s = SIZES[size_name]
    if op == "attention":
        return f"B={s['B']} H={s['H']} T={s['T']} D={s['D']} causal"
    return f"B={s['B']} T={s['T']} V={s['V']:,}"


def print_table(rows):
    header = (f"{'op (fwd+bwd)':<16}{'size':<29}{'numba ms':>10}{'numpy ms':>10}{'torch ms':>10}"
              f"{'numpy/numba':>13}{'torch/numba':>13}{'peak MiB numba':>16}{'peak MiB numpy':>16}")
    print(header)
    print("-" * len(header))
    for row in rows:
        ms = row["ms"]
        numba_ms, numpy_ms, torch_ms = ms["numba"], ms["numpy"], ms.get("torch")
        torch_cell = f"{torch_ms:.2f}" if torch_ms else "n/a"
        torch_ratio = f"{torch_ms / numba_ms:.2f}x" if torch_ms else "n/a"
        print(
            f"{row['op']:<16}{describe(row['op'], row['size']):<29}{numba_ms:>10.2f}{numpy_ms:>10.2f}"
            f"{torch_cell:>10}{numpy_ms / numba_ms:>12.2f}x{torch_ratio:>13}"
            f"{row['peak']['numba']:>16.1f}{row['peak']['numpy']:>16.1f}"
        )
    print("\nratios > 1 mean the numba kernels are faster; spreads (interquartile half-range, ms):")
    for row in rows:
        print(f"  {row['op']:<16}{row['size']:<9}" + "  ".join(f"{k} {v}" for k, v in row["spread"].items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per implementation (median reported)")
    parser.add_argument("--sizes", default="tinygpt,large", help="comma-separated: tinygpt, large, tiny (a smoke test)")
    args = parser.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; choose from {list(SIZES)}")
    print(f"kernels benchmark: float32, forward + backward through autograd; {args.repeats} turns per "
          f"implementation (each turn {OP_SETTLE_S * 1e3:.0f} ms of untimed calls, then the timed ones), medians; "
          f"each implementation in its "
          f"own process ({', '.join(implementations())}); {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for size_name in sizes:
        for op in OPS:
            rows.append(measure(op, size_name, args.repeats))
    print("threads: " + ", ".join(sorted(set(rows[0]["threads"].values()))))
    print_table(rows)


if __name__ == "__main__":
    main()

"""Kernels benchmark: attention and token log-probs, forward + backward, float32.

    .venv/bin/python -m benchmarks.kernels [--repeats 7] [--sizes tinygpt,large]

For each op and size, three implementations take turns in one process (after a
warm-up that also compiles the numba kernels; each turn a block of calls, the
first not counted, see timing.py): minigrad on its numba kernels, minigrad on
the NumPy references (`MINIGRAD_KERNELS=numpy`), and torch on the CPU with its
default thread count. Each is the public op with autograd on leaf inputs:
`F.scaled_dot_product_attention(q, k, v, is_causal=True)` with q, k, v strided
slices of one permuted (B, T, 3, H, D) array as in TinyGPT, and
`F.token_logprobs` (torch: `-F.cross_entropy(reduction="none")`), each followed
by backward. Peak memory is Python's tracemalloc over one forward + backward
(NumPy arrays are traced; torch allocations are not, so torch has none); the
inputs exist before it starts. Nothing is asserted: the table is the result.

OMP_WAIT_POLICY defaults to passive here. In one process torch and numba share
one OpenMP runtime (both load a `libgomp.so.1`, and the first one loaded serves
both), whose idle threads would otherwise spin while OpenBLAS or the other
library works. Passive waiting costs torch something (a whole DPO step: 25 ms
active, 37 ms passive, measured), so read the torch column here as a kernel-level
reference; `python -m benchmarks` compares the backends each in its own process.
"""

from __future__ import annotations

import argparse
import os
import tracemalloc

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before torch or numba load their OpenMP runtime

import numpy as np

import minigrad
import minigrad.nn.functional as F
from minigrad import kernels

from .timing import interleaved, median_ms, spread

SIZES = {
    "tiny": {"B": 2, "H": 2, "T": 8, "D": 4, "V": 11},  # a smoke test of the harness
    "tinygpt": {"B": 24, "H": 4, "T": 96, "D": 16, "V": 260},
    "large": {"B": 8, "H": 8, "T": 512, "D": 64, "V": 32_000},
}
DTYPE = np.float32
BLOCKS = {"tiny": 2, "tinygpt": 5, "large": 2}  # calls per turn, the first not counted (see timing.py)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


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


def measure(op, size_name, make, repeats, torch):
    size = SIZES[size_name]
    candidates = make(size, np.random.default_rng(0), torch)
    times = interleaved(candidates, repeats=repeats, warmup=1, block=BLOCKS[size_name])
    row = {"op": op, "size": size_name, "ms": {k: median_ms(v) for k, v in times.items()},
           "spread": {k: spread(v) for k, v in times.items()}}
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
    torch = _torch()
    import numba

    threads = f"numba {numba.get_num_threads()} threads"
    threads += f", torch {torch.get_num_threads()} threads" if torch is not None else ", torch not installed"
    print(f"kernels benchmark: float32, forward + backward through autograd; median of {args.repeats} interleaved "
          f"repeats after a warm-up; {threads}; {os.cpu_count()} CPUs; "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; "
          f"load average {os.getloadavg()[0]:.2f}")
    rows = []
    for size_name in sizes:
        rows.append(measure("attention", size_name, attention_candidates, args.repeats, torch))
        rows.append(measure("token_logprobs", size_name, token_logprobs_candidates, args.repeats, torch))
    print_table(rows)


if __name__ == "__main__":
    main()

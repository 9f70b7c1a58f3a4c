"""Pretrained-shape benchmark: a GPT-2-small-shaped model (12 layers, 768 hidden, 12
heads, vocab 50,257, random weights), float32.

    python -m benchmarks.pretrained [--quick] [--out DIR]      (also part of `python -m benchmarks`)

1. One DPO step (policy forward + backward on 4 pairs = 8 rows of 256 tokens,
   cached reference log-probs, clipping, AdamW) on the numpy backend and on torch
   CPU eager, each in its own worker process, steps interleaved in blocks
   (`side_by_side`): ms/step, tokens/s, peak RSS.
2. Generation of 128 new tokens (greedy, one 16-token prompt) with the KV cache and
   by recomputing the whole sequence at each token, on both backends: tokens/s.

Measured, not asserted. `--quick` runs a 2-layer, 128-wide model on 64-token rows
and 16 new tokens: a check that everything runs, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from .side_by_side import SideBySide
from .timing import median_ms, spread

FULL = {"n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257, "n_positions": 1024, "T": 256,
        "prompt": 64, "new_tokens": 128}
QUICK = {"n_layer": 2, "n_embd": 128, "n_head": 4, "vocab_size": 1000, "n_positions": 256, "T": 64,
         "prompt": 16, "new_tokens": 16}
PAIRS = 4
GEN_PROMPT = 16


def random_gpt2(shape: dict, backend, seed: int = 0):
    """A GPT2LMHeadModel of `shape` on `backend`, weights N(0, 0.02) drawn in NumPy
    (the same on every backend), LayerNorms ones/zeros."""
    from dpo.pretrained.gpt2 import GPT2Config, GPT2LMHeadModel

    raw = {k: shape[k] for k in ("n_layer", "n_embd", "n_head", "vocab_size", "n_positions")}
    config = GPT2Config.from_hf({**raw, "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})
    model = GPT2LMHeadModel(config, backend=backend)
    rng = np.random.default_rng(seed)
    weights = {}
    for name, value in model.export_weights().items():
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            weights[name] = np.ones(value.shape, np.float32)
        elif name.endswith("bias"):
            weights[name] = np.zeros(value.shape, np.float32)
        else:
            weights[name] = rng.standard_normal(value.shape, dtype=np.float32) * np.float32(0.02)
    model.load_weights(weights)
    return model


def preference_batch(shape: dict, seed: int = 0):
    """4 pairs as 8 right-padding-free rows of T tokens: a `prompt`-token prompt shared
    by chosen and rejected, then different completions; targets score the completions."""
    from dpo.batching import IGNORE_INDEX, PreferenceBatch

    rng = np.random.default_rng(seed)
    T, P, V = shape["T"], shape["prompt"], shape["vocab_size"]
    ids = rng.integers(0, V, size=(2 * PAIRS, T)).astype(np.int64)
    ids[PAIRS:, :P] = ids[:PAIRS, :P]
    targets = np.full((2 * PAIRS, T), IGNORE_INDEX, dtype=np.int64)
    targets[:, P - 1:T - 1] = ids[:, P:]
    rows = 2 * PAIRS
    return PreferenceBatch(ids, np.ones((rows, T), np.int64), targets, np.full(rows, P, np.int64),
                           np.full(rows, T - P, np.int64), 0)


def dpo_step_workload(spec: dict):
    """(step, info) for the benchmark worker: one DPO step on spec["backend"]."""
    from backends import get_backend
    from dpo.config import DPOConfig
    from dpo.logprobs import sequence_log_prob
    from dpo.training import dpo_step

    shape = spec["shape"]
    backend = get_backend(spec["backend"], dtype="float32")
    policy = random_gpt2(shape, backend)
    batch = preference_batch(shape)
    with backend.no_grad():  # the reference is the starting policy, computed once (cached, as in training)
        ref = backend.to_numpy(sequence_log_prob(policy, batch).logps).astype(np.float64)
    ref_logps = np.stack(batch.chosen_rejected(ref), axis=1)
    config = DPOConfig(lr=1e-5)
    optimizer = backend.optimizer("adamw", policy.parameters(), lr=config.lr)

    def step():
        dpo_step(policy, batch, ref_logps, optimizer, config)
        backend.synchronize()

    return step, {"tokens": int(batch.attention_mask.sum()), "shape": list(batch.input_ids.shape),
                  "backend": spec["backend"], "parameters": policy.num_parameters()}


def generation_workload(spec: dict):
    """(step, info): generating shape["new_tokens"] greedy tokens, with or without the cache."""
    from backends import get_backend
    from dpo.generation import generate_batch

    shape = spec["shape"]
    backend = get_backend(spec["backend"], dtype="float32")
    model = random_gpt2(shape, backend)
    prompt = np.random.default_rng(1).integers(0, shape["vocab_size"], GEN_PROMPT).tolist()

    def step():
        out = generate_batch(model, [prompt], max_new_tokens=shape["new_tokens"], use_cache=spec["cache"])
        assert len(out[0]) == shape["new_tokens"]

    generate_batch(model, [prompt], max_new_tokens=2, use_cache=spec["cache"])  # compiles and first calls, untimed

    return step, {"tokens": shape["new_tokens"], "backend": spec["backend"]}


def _spec(kind: str, backend: str, shape: dict, **extra) -> dict:
    return {"workload": f"benchmarks.pretrained:{kind}", "backend": backend, "shape": shape, **extra}


def run(quick: bool = False, out_dir: str | None = None) -> dict:
    """Run both parts, print the tables, and with `out_dir` write pretrained.json and
    pretrained.md there."""
    lines = []

    def show(text=""):  # the tables go to stdout and to pretrained.md
        lines.append(text)
        print(text, flush=True)

    shape = QUICK if quick else FULL
    rounds, block = 2, 2  # a step of the full shape takes seconds: few steps, each one timed
    report = {"shape": {k: v for k, v in shape.items()}, "pairs": PAIRS, "dtype": "float32", "quick": quick}
    show(f"\n## Pretrained shape: GPT-2 ({shape['n_layer']} layers, {shape['n_embd']} hidden, "
          f"{shape['n_head']} heads, vocab {shape['vocab_size']}), float32\n")
    specs = {b: _spec("dpo_step_workload", b, shape) for b in ("numpy", "torch")}
    with SideBySide(specs) as side:
        times = side.interleaved(rounds=rounds, block=block, warmup=1)
        memory = {b: side.memory(b) for b in specs}
        info = {b: side.info(b) for b in specs}
    step_rows = {}
    for b in specs:
        ms = median_ms(times[b])
        step_rows[b] = {"ms_per_step": ms, "spread": spread(times[b]), "tokens_per_s": info[b]["tokens"] / (ms / 1e3),
                        "peak_rss_mib": memory[b]["peak_rss_mib"], "steps": len(times[b])}
    report["dpo_step"] = step_rows
    report["parameters"] = info["numpy"]["parameters"]
    show(f"One DPO step, {PAIRS} pairs x {shape['T']} tokens ({report['parameters'] / 1e6:.1f}M parameters):\n")
    show("| backend | ms/step | tokens/s | peak RSS MiB |\n|---|---|---|---|")
    for b, row in step_rows.items():
        noise = f" ({row['spread']})" if row["spread"] else ""
        show(f"| {b} | {row['ms_per_step']:.0f}{noise} | {row['tokens_per_s']:.0f} | "
              f"{row['peak_rss_mib']:.0f} |")
    show(f"\nnumpy / torch time: {step_rows['numpy']['ms_per_step'] / step_rows['torch']['ms_per_step']:.2f}x; "
          f"peak RSS {step_rows['numpy']['peak_rss_mib'] / step_rows['torch']['peak_rss_mib']:.2f}x")

    gen_rows = {}
    for b in ("numpy", "torch"):
        gen_specs = {f"{b} cache": _spec("generation_workload", b, shape, cache=True),
                     f"{b} recompute": _spec("generation_workload", b, shape, cache=False)}
        with SideBySide(gen_specs) as side:  # one timed generation each (the workers warmed up on 2 tokens)
            times = {name: side.workers[name].steps(1) for name in gen_specs}
        for name, samples in times.items():
            ms = median_ms(samples)
            gen_rows[name] = {"ms": ms, "tokens_per_s": shape["new_tokens"] / (ms / 1e3)}
    report["generation"] = gen_rows
    show(f"\nGeneration of {shape['new_tokens']} new tokens (greedy, {GEN_PROMPT}-token prompt):\n")
    show("| backend | KV cache tokens/s | recompute tokens/s | speed-up |\n|---|---|---|---|")
    for b in ("numpy", "torch"):
        c, r = gen_rows[f"{b} cache"], gen_rows[f"{b} recompute"]
        speedup = c["tokens_per_s"] / r["tokens_per_s"]
        show(f"| {b} | {c['tokens_per_s']:.1f} | {r['tokens_per_s']:.1f} | {speedup:.1f}x |")
    report["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report["cpu_count"], report["load_average_1_5_15"] = os.cpu_count(), list(os.getloadavg())
    show(f"\n{report['cpu_count']} CPUs; load average at the end {report['load_average_1_5_15'][0]:.1f} (1 min), "
         f"{report['load_average_1_5_15'][2]:.1f} (15 min): other work on the machine shows in these figures")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "pretrained.json"), "w") as f:
            json.dump(report, f, indent=2)
        with open(os.path.join(out_dir, "pretrained.md"), "w") as f:
            f.write("\n".join(lines + ["", f"Measured {report['date']} with `python -m benchmarks.pretrained "
                                            "--out benchmarks/results`.", ""]))
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pretrained", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny shape: checks that it runs")
    parser.add_argument("--out", metavar="DIR", default=None, help="write pretrained.json there")
    args = parser.parse_args(argv)
    run(quick=args.quick, out_dir=args.out)


if __name__ == "__main__":
    main()

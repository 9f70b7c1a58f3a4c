"""Pretrained-shape benchmark: a GPT-2-small-shaped model (12 layers, 768 hidden, 12
heads, vocab 50,257) or, with `--shape smollm2-135m`, a Llama-family model shaped as
SmolLM2-135M (30 layers, 576 hidden, 9 heads, 3 key/value heads, intermediate 1536,
vocab 49,152, tied embeddings, rope_theta 100,000); random weights, float32.

    python -m benchmarks.pretrained [--quick] [--shape gpt2-small|smollm2-135m] [--lora-r 16]
                                    [--rounds N] [--no-generation] [--out DIR]
    (the GPT-2 shape is also part of `python -m benchmarks`)

1. One DPO step (policy forward + backward on 4 pairs = 8 rows of 256 tokens,
   cached reference log-probs, clipping, AdamW) on the numpy backend and on torch
   CPU eager, each in its own worker process, steps interleaved in blocks
   (`side_by_side`): ms/step, tokens/s, peak RSS. Then the same step with LoRA
   adapters (r = `--lora-r`, alpha = 2r, the architecture's default targets: GPT-2's
   c_attn, Llama's q_proj and v_proj; AdamW over the adapters only), numpy and torch
   side by side in two fresh workers, so each peak RSS is that configuration's own.
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

GPT2_SMALL = {"family": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257,
              "n_positions": 1024, "T": 256, "prompt": 64, "new_tokens": 128}
SMOLLM2_135M = {"family": "llama", "num_hidden_layers": 30, "hidden_size": 576, "num_attention_heads": 9,
                "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152,
                "max_position_embeddings": 2048, "tie_word_embeddings": True, "rope_theta": 100000.0,
                "rms_norm_eps": 1e-5, "T": 256, "prompt": 64, "new_tokens": 128}
SHAPES = {"gpt2-small": GPT2_SMALL, "smollm2-135m": SMOLLM2_135M}
QUICK = {"gpt2-small": {**GPT2_SMALL, "n_layer": 2, "n_embd": 128, "n_head": 4, "vocab_size": 1000,
                        "n_positions": 256, "T": 64, "prompt": 16, "new_tokens": 16},
         "smollm2-135m": {**SMOLLM2_135M, "num_hidden_layers": 2, "hidden_size": 96, "num_attention_heads": 3,
                          "num_key_value_heads": 1, "intermediate_size": 256, "vocab_size": 1000,
                          "max_position_embeddings": 256, "T": 64, "prompt": 16, "new_tokens": 16}}
FULL = GPT2_SMALL  # the default shape
PAIRS = 4
GEN_PROMPT = 16
LORA_R = 16


def describe(shape: dict) -> str:
    if shape["family"] == "gpt2":
        return (f"GPT-2 ({shape['n_layer']} layers, {shape['n_embd']} hidden, {shape['n_head']} heads, "
                f"vocab {shape['vocab_size']})")
    return (f"Llama, SmolLM2-135M's shape ({shape['num_hidden_layers']} layers, {shape['hidden_size']} hidden, "
            f"{shape['num_attention_heads']} heads, {shape['num_key_value_heads']} kv heads, intermediate "
            f"{shape['intermediate_size']}, vocab {shape['vocab_size']}, tied embeddings)")


def random_model(shape: dict, backend, seed: int = 0):
    """A GPT2LMHeadModel or LlamaForCausalLM of `shape` on `backend`, weights N(0, 0.02)
    drawn in NumPy (the same on every backend), norm weights ones, biases zeros."""
    if shape["family"] == "gpt2":
        from dpo.pretrained.gpt2 import GPT2Config, GPT2LMHeadModel

        raw = {k: shape[k] for k in ("n_layer", "n_embd", "n_head", "vocab_size", "n_positions")}
        config = GPT2Config.from_hf({**raw, "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})
        model = GPT2LMHeadModel(config, backend=backend)
    else:
        from dpo.pretrained.llama import LlamaConfig, LlamaForCausalLM

        raw = {k: v for k, v in shape.items() if k not in ("family", "T", "prompt", "new_tokens")}
        raw = {**raw, "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu"}
        model = LlamaForCausalLM(LlamaConfig.from_hf(raw, "LlamaForCausalLM"), backend=backend)
    rng = np.random.default_rng(seed)
    weights = {}
    for name, value in model.export_weights().items():
        if name.endswith("weight") and value.ndim == 1:  # LayerNorm / RMSNorm scales
            weights[name] = np.ones(value.shape, np.float32)
        elif name.endswith("bias"):
            weights[name] = np.zeros(value.shape, np.float32)
        else:
            weights[name] = rng.standard_normal(value.shape, dtype=np.float32) * np.float32(0.02)
    model.load_weights(weights)
    return model


random_gpt2 = random_model


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
    backend.tune_process()  # an entry point: it measures what the CLI gets (MINIGRAD_CPU_TUNING=0: off)
    policy = random_model(shape, backend)
    batch = preference_batch(shape)
    with backend.no_grad():  # the reference is the starting policy, computed once (cached, as in training)
        ref = backend.to_numpy(sequence_log_prob(policy, batch).logps).astype(np.float64)
    ref_logps = np.stack(batch.chosen_rejected(ref), axis=1)
    config = DPOConfig(lr=1e-5)
    if spec.get("lora"):  # B = 0: the adapted policy starts as the reference above
        from dpo.lora import apply_lora

        apply_lora(policy, r=spec["lora"], alpha=2 * spec["lora"])
    trainable = [p for p in policy.parameters() if p.requires_grad]  # all of them without LoRA
    optimizer = backend.optimizer("adamw", trainable, lr=config.lr)

    def step():
        dpo_step(policy, batch, ref_logps, optimizer, config)
        backend.synchronize()

    return step, {"tokens": int(batch.attention_mask.sum()), "shape": list(batch.input_ids.shape),
                  "backend": spec["backend"], "parameters": policy.num_parameters(),
                  "trainable": sum(int(np.prod(p.shape)) for p in trainable)}


def generation_workload(spec: dict):
    """(step, info): generating shape["new_tokens"] greedy tokens, with or without the cache."""
    from backends import get_backend
    from dpo.generation import generate_batch

    shape = spec["shape"]
    backend = get_backend(spec["backend"], dtype="float32")
    backend.tune_process()  # an entry point: it measures what the CLI gets (MINIGRAD_CPU_TUNING=0: off)
    model = random_model(shape, backend)
    prompt = np.random.default_rng(1).integers(0, shape["vocab_size"], GEN_PROMPT).tolist()

    def step():
        out = generate_batch(model, [prompt], max_new_tokens=shape["new_tokens"], use_cache=spec["cache"])
        assert len(out[0]) == shape["new_tokens"]

    generate_batch(model, [prompt], max_new_tokens=2, use_cache=spec["cache"])  # compiles and first calls, untimed

    return step, {"tokens": shape["new_tokens"], "backend": spec["backend"]}


def _spec(kind: str, backend: str, shape: dict, **extra) -> dict:
    return {"workload": f"benchmarks.pretrained:{kind}", "backend": backend, "shape": shape, **extra}


def _step_rows(specs: dict, rounds: int, block: int) -> tuple:
    """({name: row}, {name: worker info}) for DPO-step workers run side by side."""
    with SideBySide(specs) as side:
        times = side.interleaved(rounds=rounds, block=block, warmup=1)
        memory = {b: side.memory(b) for b in specs}
        info = {b: side.info(b) for b in specs}
    rows = {}
    for b in specs:
        ms = median_ms(times[b])
        rows[b] = {"ms_per_step": ms, "spread": spread(times[b]), "tokens_per_s": info[b]["tokens"] / (ms / 1e3),
                   "peak_rss_mib": memory[b]["peak_rss_mib"], "steps": len(times[b]),
                   "trainable": info[b]["trainable"]}
    return rows, info


def run(quick: bool = False, out_dir: str | None = None, shape_name: str = "gpt2-small", lora_r: int = LORA_R,
        rounds: int = 2, generation: bool = True) -> dict:
    """Run both parts, print the tables, and with `out_dir` write pretrained.json and
    pretrained.md there (pretrained-<shape>.* for a shape other than GPT-2's).
    lora_r 0 leaves out the LoRA rows; generation False the generation part."""
    lines = []

    def show(text=""):  # the tables go to stdout and to pretrained.md
        lines.append(text)
        print(text, flush=True)

    if shape_name not in SHAPES:
        raise ValueError(f"benchmarks.pretrained: unknown shape {shape_name!r}; choose from {', '.join(SHAPES)}")
    shape = QUICK[shape_name] if quick else SHAPES[shape_name]
    block = 2  # a step of the full shape takes seconds: few steps, each one timed
    report = {"shape_name": shape_name, "shape": dict(shape), "pairs": PAIRS, "dtype": "float32", "quick": quick,
              "lora_r": lora_r, "rounds": rounds}
    show(f"\n## Pretrained shape: {describe(shape)}, float32\n")
    step_rows, info = _step_rows({b: _spec("dpo_step_workload", b, shape) for b in ("numpy", "torch")}, rounds, block)
    if lora_r:
        lora_rows, _ = _step_rows({f"{b} LoRA r={lora_r}": _spec("dpo_step_workload", b, shape, lora=lora_r)
                                   for b in ("numpy", "torch")}, rounds, block)
        step_rows.update(lora_rows)
    report["dpo_step"] = step_rows
    report["parameters"] = info["numpy"]["parameters"]
    show(f"One DPO step, {PAIRS} pairs x {shape['T']} tokens ({report['parameters'] / 1e6:.1f}M parameters), "
         f"{rounds} timed steps each (median):\n")
    show("| backend | trainable params | ms/step | tokens/s | peak RSS MiB |\n|---|---|---|---|---|")
    for b, row in step_rows.items():
        noise = f" ({row['spread']})" if row["spread"] else ""
        show(f"| {b} | {row['trainable'] / 1e6:.2f}M | {row['ms_per_step']:.0f}{noise} | {row['tokens_per_s']:.0f} | "
             f"{row['peak_rss_mib']:.0f} |")
    show(f"\nnumpy / torch time: {step_rows['numpy']['ms_per_step'] / step_rows['torch']['ms_per_step']:.2f}x; "
         f"peak RSS {step_rows['numpy']['peak_rss_mib'] / step_rows['torch']['peak_rss_mib']:.2f}x")
    if lora_r:
        for b in ("numpy", "torch"):
            lora = step_rows[f"{b} LoRA r={lora_r}"]
            show(f"{b}: full step / LoRA step time {step_rows[b]['ms_per_step'] / lora['ms_per_step']:.2f}x, "
                 f"peak RSS {step_rows[b]['peak_rss_mib'] / lora['peak_rss_mib']:.2f}x")
        numpy_lora, torch_lora = (step_rows[f"{b} LoRA r={lora_r}"] for b in ("numpy", "torch"))
        show(f"LoRA numpy / torch time: {numpy_lora['ms_per_step'] / torch_lora['ms_per_step']:.2f}x; "
             f"peak RSS {numpy_lora['peak_rss_mib'] / torch_lora['peak_rss_mib']:.2f}x")

    if generation:
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
        stem = "pretrained" if shape_name == "gpt2-small" else f"pretrained-{shape_name}"
        command = "python -m benchmarks.pretrained" + (" --quick" if quick else "")
        command += "" if shape_name == "gpt2-small" else f" --shape {shape_name}"
        command += "" if lora_r == LORA_R else f" --lora-r {lora_r}"
        command += "" if rounds == 2 else f" --rounds {rounds}"
        command += "" if generation else " --no-generation"
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, f"{stem}.json"), "w") as f:
            json.dump(report, f, indent=2)
        with open(os.path.join(out_dir, f"{stem}.md"), "w") as f:
            f.write("\n".join(lines + ["", f"Measured {report['date']} with `{command} --out {out_dir}`.", ""]))
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pretrained", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny shape: checks that it runs")
    parser.add_argument("--shape", choices=list(SHAPES), default="gpt2-small", help="the model shape")
    parser.add_argument("--lora-r", type=int, default=LORA_R, metavar="R",
                        help=f"LoRA rank of the LoRA rows (default {LORA_R}; 0 leaves them out)")
    parser.add_argument("--rounds", type=int, default=2, metavar="N", help="timed steps per configuration")
    parser.add_argument("--no-generation", action="store_true", help="leave out the generation part")
    parser.add_argument("--out", metavar="DIR", default=None, help="write pretrained.json there")
    args = parser.parse_args(argv)
    if args.lora_r < 0:
        parser.error(f"--lora-r must be 0 or a positive int, got {args.lora_r}")
    if args.rounds < 1:
        parser.error(f"--rounds must be a positive int, got {args.rounds}")
    run(quick=args.quick, out_dir=args.out, shape_name=args.shape, lora_r=args.lora_r, rounds=args.rounds,
        generation=not args.no_generation)


if __name__ == "__main__":
    main()

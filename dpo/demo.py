"""The demo: SFT warm-up, freeze the reference, DPO on the twelve triples, report.

`python -m dpo demo` (and `make demo`) runs `run_demo`, which exits 0 only when
DPO did what it should: the loss fell, and the reward margin and the accuracy
(share of pairs whose chosen reward beats the rejected one) rose.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np

from backends import get_backend

from .batching import truncation_note
from .config import DPOConfig
from .data import make_preferences
from .evaluation import evaluate_margins, margin_table
from .generation import generate
from .tokenizer import InstructionTokenizer
from .training import build_models, train_dpo, warmup_pretrain

SAMPLE_PROMPTS = 3


@dataclasses.dataclass
class DemoResult:
    """What the demo measured; `succeeded` is the exit criterion."""

    first_loss: float
    last_loss: float
    margin_before: float
    margin_after: float
    accuracy_before: float
    accuracy_after: float
    seconds: float
    result: object = None

    @property
    def succeeded(self) -> bool:
        return (self.last_loss < self.first_loss and self.margin_after > self.margin_before
                and self.accuracy_after > self.accuracy_before)


def run_demo(backend="numpy", device=None, dtype="float32", config: DPOConfig | None = None, pairs=None,
             out_dir=None, stream=None) -> DemoResult:
    """Run the whole lesson on `backend` and print it to `stream` (stdout)."""
    stream = stream or sys.stdout
    config = config or DPOConfig()
    be = get_backend(backend, device=device, dtype=dtype) if isinstance(backend, str) else backend
    pairs = list(pairs if pairs is not None else make_preferences())
    tokenizer = InstructionTokenizer()
    start = time.perf_counter()

    def say(text=""):
        print(text, file=stream, flush=True)

    policy, reference = build_models(config, backend=be)
    say(f"minigrad-dpo demo: backend {be.name} ({be.device}, {be.dtype_name}), TinyGPT "
        f"{policy.num_parameters():,} parameters, {len(pairs)} preference pairs")
    note = truncation_note(pairs, tokenizer, config.max_len, config)
    if note:
        say(note)

    sft_losses = warmup_pretrain(policy, pairs, tokenizer, steps=config.sft_steps, lr=config.sft_lr,
                                 batch_size=config.batch_size, seed=config.seed, max_len=config.max_len,
                                 config=config)
    if sft_losses:
        say(f"SFT warm-up: {len(sft_losses)} steps, loss {sft_losses[0]:.3f} -> {sft_losses[-1]:.3f}")
    reference.load_weights(policy.export_weights())  # the reference is the warmed-up policy, frozen

    samples = pairs[:SAMPLE_PROMPTS]
    generations_before = [generate(policy, tokenizer, p.prompt_text, max_new_tokens=40) for p in samples]
    before = evaluate_margins(policy, reference, pairs, config, tokenizer)

    say(f"DPO: loss {config.loss_type}, beta {config.beta}, lr {config.lr}, batch {config.batch_size}, "
        f"{config.max_steps or config.epochs} {'steps' if config.max_steps else 'epochs'}")

    def show(row):
        if "loss" in row:
            say(f"  step {row['step']:3d}  loss {row['loss']:.4f}  margin {row['rewards/margins']:+.4f}  "
                f"accuracy {row['rewards/accuracies']:.2f}  chosen {row['rewards/chosen']:+.4f}  "
                f"rejected {row['rewards/rejected']:+.4f}")

    result = train_dpo(policy, reference, pairs, config, tokenizer, out_dir=out_dir, on_log=show)
    after = evaluate_margins(policy, reference, pairs, config, tokenizer)

    say()
    say("Reward margins per pair (after DPO; 'before' is the start, where policy = reference):")
    say(margin_table(after, before))
    say()
    say("Greedy generations before -> after DPO:")
    for pair, old in zip(samples, generations_before):
        new = generate(policy, tokenizer, pair.prompt_text, max_new_tokens=40)
        say(f"  {pair.prompt_text!r}\n    before: {old!r}\n    after:  {new!r}")

    losses = result.rows("loss")
    demo = DemoResult(
        first_loss=losses[0], last_loss=losses[-1],
        margin_before=float(np.mean([m.margin for m in before])),
        margin_after=float(np.mean([m.margin for m in after])),
        accuracy_before=float(np.mean([m.margin > 0 for m in before])),
        accuracy_after=float(np.mean([m.margin > 0 for m in after])),
        seconds=time.perf_counter() - start, result=result,
    )
    say()
    verdict = "OK" if demo.succeeded else "FAILED"
    say(f"{verdict}: loss {demo.first_loss:.4f} -> {demo.last_loss:.4f}, mean margin {demo.margin_before:+.4f} -> "
        f"{demo.margin_after:+.4f}, accuracy {demo.accuracy_before:.2f} -> {demo.accuracy_after:.2f} "
        f"({demo.seconds:.1f} s)")
    return demo

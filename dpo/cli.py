"""Command line: `python -m dpo {demo,sft,train,eval,generate}` (also the `minigrad-dpo` script).

    python -m dpo demo                                   # the whole lesson on the twelve triples
    python -m dpo sft --data prefs.jsonl --out runs/a    # SFT warm-up -> runs/a/sft.safetensors
    python -m dpo train --init runs/a/sft.safetensors --data prefs.jsonl --out runs/a
    python -m dpo eval --checkpoint runs/a/checkpoint.safetensors --data prefs.jsonl
    python -m dpo generate --checkpoint runs/a/checkpoint.safetensors --prompt "Compute 2 + 3."

Bad input (missing file, malformed row, unknown loss type, CUDA or torch absent,
...) prints one line on stderr and exits non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

from .batching import truncation_note
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import DPOConfig
from .data import PreferenceDataError, load_preferences, make_preferences
from .losses import F_DIVERGENCES, LOSS_TYPE_NAMES
from .metrics import plot_metrics, read_metrics

EXIT_FAILED, EXIT_USAGE = 1, 2


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command, not a usage dump."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _number(text, check, need):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not check(value):
        raise argparse.ArgumentTypeError(f"expected {need}, got {text!r}")
    return value


def _number_at_least_zero(text):
    return _number(text, lambda v: v >= 0, "a number >= 0")


def _positive_float(text):
    return _number(text, lambda v: v > 0, "a positive number")


def _fraction(text):
    return _number(text, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _smoothing(text):
    return _number(text, lambda v: 0 <= v < 0.5, "a number in [0, 0.5)")


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _loss_types(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in LOSS_TYPE_NAMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown loss type {', '.join(unknown) or repr(text)}; choose from: {', '.join(LOSS_TYPE_NAMES)}"
        )
    return names


def _floats(text):
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        values = None
    if values is None or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated finite numbers, got {text!r}")
    return values


def _add_runtime(p):
    g = p.add_argument_group("backend")
    g.add_argument("--backend", choices=("numpy", "torch"), default="numpy",
                   help="numpy = minigrad (NumPy + numba, no framework); torch = PyTorch (default: numpy)")
    g.add_argument("--device", default=None, help="cpu or cuda (torch backend only; default cpu)")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="default: float32")
    g.add_argument("--seed", type=_non_negative_int, default=None,
                   help="seeds initialisation, shuffling, the split and sampling (default 0)")


def _add_data(p):
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="FILE.jsonl", default=None,
                   help="preference pairs: JSONL with prompt/chosen/rejected (default: the twelve built-in triples)")
    g.add_argument("--skip-invalid", action="store_true",
                   help="skip malformed rows (counted and reported) instead of stopping at the first")


def _add_training(p, sft_only=False):
    g = p.add_argument_group("training")
    g.add_argument("--batch-size", type=_positive_int, default=None, help="pairs per step (default 12)")
    g.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default: DPO 1e-4, SFT 3e-3)")
    if sft_only:
        g.add_argument("--steps", type=_positive_int, default=None, help="SFT steps (default 60)")
        return
    g.add_argument("--beta", type=_positive_float, default=None, help="β, the KL tie to the reference (default 0.1)")
    g.add_argument("--loss-type", type=_loss_types, default=None, metavar="NAME[,NAME...]",
                   help=f"one or more of: {', '.join(LOSS_TYPE_NAMES)} (default sigmoid; sigmoid,sft = RPO)")
    g.add_argument("--loss-weights", type=_floats, default=None, metavar="W[,W...]",
                   help="weights of the listed loss types (default: all 1)")
    g.add_argument("--label-smoothing", type=_smoothing, default=None,
                   help="ε for cDPO / robust / exo_pair (default 0)")
    g.add_argument("--f-divergence", choices=tuple(F_DIVERGENCES), default=None, help="default reverse_kl")
    g.add_argument("--epochs", type=_positive_int, default=None, help="passes over the data (default 20)")
    g.add_argument("--max-steps", type=_positive_int, default=None, help="stop after this many updates")
    g.add_argument("--eval-fraction", type=_fraction, default=None, help="share of pairs held out for eval (default 0)")
    g.add_argument("--sft-steps", type=_non_negative_int, default=None,
                   help="SFT warm-up steps before DPO when no --init is given (default 60)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m dpo", description=(
        "Direct Preference Optimization on a tiny GPT, on minigrad (NumPy + numba) or PyTorch."))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = commands.add_parser("demo", help="the whole lesson on the twelve triples (SFT, DPO, report)",
                               description="SFT warm-up, frozen reference, DPO, margin table and generations; "
                                           "exits 0 when the loss fell and the margin and accuracy rose.")
    _add_runtime(demo)
    _add_data(demo)
    _add_training(demo)
    demo.add_argument("--out", metavar="DIR", default=None, help="also write metrics.jsonl, a plot and a checkpoint")

    sft = commands.add_parser("sft", help="supervised warm-up on prompt -> chosen",
                              description="Next-token training on the chosen completions; writes DIR/sft.safetensors.")
    _add_runtime(sft)
    _add_data(sft)
    _add_training(sft, sft_only=True)
    sft.add_argument("--out", metavar="DIR", required=True, help="output folder")

    train = commands.add_parser("train", help="DPO training",
                                description="DPO against a frozen reference (the --init model, or a fresh SFT "
                                            "warm-up); writes checkpoint, reference, metrics.jsonl and a plot to DIR.")
    _add_runtime(train)
    _add_data(train)
    _add_training(train)
    start = train.add_mutually_exclusive_group()
    start.add_argument("--init", metavar="CKPT", default=None,
                       help="start policy and reference from this checkpoint (e.g. from `sft`)")
    start.add_argument("--resume", metavar="CKPT", default=None,
                       help="continue an interrupted run from its checkpoint (its config is used; "
                            "reference.safetensors must lie beside it)")
    train.add_argument("--checkpoint-every", type=_non_negative_int, default=None,
                       help="steps between checkpoints (default 0: only at the end)")
    train.add_argument("--out", metavar="DIR", required=True, help="output folder")

    evaluate = commands.add_parser("eval", help="reward margins of a trained policy",
                                   description="Per-pair log-probs, rewards and margins against the reference.")
    _add_runtime(evaluate)
    _add_data(evaluate)
    evaluate.add_argument("--checkpoint", metavar="CKPT", required=True, help="the policy")
    evaluate.add_argument("--reference", metavar="CKPT", default=None,
                          help="the reference (default: reference.safetensors beside --checkpoint)")

    gen = commands.add_parser("generate", help="complete prompts with a trained model",
                              description="Greedy (temperature 0) or sampled completions.")
    _add_runtime(gen)
    gen.add_argument("--checkpoint", metavar="CKPT", required=True)
    gen.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for several)")
    gen.add_argument("--max-new-tokens", type=_positive_int, default=48)
    gen.add_argument("--temperature", type=_number_at_least_zero, default=0.0, help="0 = greedy (default)")
    gen.add_argument("--top-k", type=_positive_int, default=None)
    return parser


# ---- helpers ----------------------------------------------------------------------------
def _backend(args):
    from backends import get_backend

    backend = get_backend(args.backend, device=args.device, dtype=args.dtype)
    tuned = backend.tune_process()  # an entry point's choice, never the library's
    if tuned:  # reported once, after the command succeeded: a bad input stays a one-line error
        _TUNING_REPORT[:] = ["process tuning: " + "; ".join(tuned.values()) + " (MINIGRAD_CPU_TUNING=0: off)"]
    return backend


_TUNING_REPORT = []


def _pairs(args, max_len):
    if args.data is None:
        return make_preferences()
    pairs = load_preferences(args.data, skip_invalid=args.skip_invalid, max_len=max_len)
    if pairs.skipped:
        print(f"skipped {len(pairs.skipped)} invalid row(s) of {args.data}; first: {pairs.skipped[0].reason}",
              file=sys.stderr)
    note = truncation_note(pairs, max_len=max_len)
    if note:
        print(f"{args.data}: {note}", file=sys.stderr)
    return pairs


# command-line option -> DPOConfig field (sft's --lr and --steps are the SFT warm-up's)
CONFIG_OPTIONS = {"batch_size": "batch_size", "lr": "lr", "beta": "beta", "loss_type": "loss_type",
                  "loss_weights": "loss_weights", "label_smoothing": "label_smoothing", "epochs": "epochs",
                  "max_steps": "max_steps", "eval_fraction": "eval_fraction", "sft_steps": "sft_steps",
                  "checkpoint_every": "checkpoint_every", "seed": "seed", "steps": "sft_steps"}


def _config(args, base: DPOConfig | None = None) -> DPOConfig:
    """`base` (default DPOConfig()) with the options given on the command line put in."""
    values = (base or DPOConfig()).to_dict()
    mapping = dict(CONFIG_OPTIONS, lr="sft_lr" if args.command == "sft" else "lr")
    for option, field in mapping.items():
        value = getattr(args, option, None)
        if value is not None:
            values[field] = value[0] if option == "loss_type" and len(value) == 1 else value
    if getattr(args, "f_divergence", None):
        values["loss_options"] = {**values["loss_options"], "f_divergence": args.f_divergence}
    try:
        return DPOConfig.from_dict(values)
    except ValueError as error:  # a combination the option types cannot see (e.g. weights vs loss types)
        raise UsageError(str(error)) from None


def _model_from_checkpoint(path, backend):
    from .model import TinyGPT

    checkpoint = load_checkpoint(path)
    config = DPOConfig.from_dict(checkpoint.config)
    model = TinyGPT(config.model, backend=backend)
    model.load_weights(checkpoint.weights)
    return model, config, checkpoint


def _write_plot(out_dir, rows):
    note = plot_metrics(rows, os.path.join(out_dir, "metrics.png"))
    print(note or f"plot: {os.path.join(out_dir, 'metrics.png')}")


# ---- commands ---------------------------------------------------------------------------
def cmd_demo(args):
    from .demo import run_demo

    config = _config(args)
    pairs = _pairs(args, config.max_len)
    result = run_demo(_backend(args), config=config, pairs=pairs, out_dir=args.out)
    if args.out:
        _write_plot(args.out, result.result.history)
    return 0 if result.succeeded else EXIT_FAILED


def cmd_sft(args):
    from .training import build_models, warmup_pretrain

    config = _config(args)
    pairs = _pairs(args, config.max_len)
    policy, _ = build_models(config, backend=_backend(args))
    losses = warmup_pretrain(policy, pairs, steps=config.sft_steps, lr=config.sft_lr,
                             batch_size=config.batch_size, seed=config.seed, max_len=config.max_len,
                             log=lambda step, loss: print(f"  sft step {step:3d}  loss {loss:.4f}")
                             if step % 10 == 0 or step == config.sft_steps else None)
    path = os.path.join(args.out, "sft.safetensors")
    save_checkpoint(path, policy, config, step=len(losses))
    print(f"SFT: loss {losses[0]:.4f} -> {losses[-1]:.4f}; wrote {path}")
    return 0


def cmd_train(args):
    from .evaluation import evaluate_margins, margin_table
    from .training import build_models, freeze, train_dpo, warmup_pretrain

    backend = _backend(args)
    if args.resume:  # the interrupted run's config; options given here may extend it (e.g. --epochs)
        config = _config(args, base=DPOConfig.from_dict(load_checkpoint(args.resume).config))
    else:
        config = _config(args)
    if args.init:
        init_model, _, _ = _model_from_checkpoint(args.init, backend)
        if init_model.config != config.model:
            config = DPOConfig.from_dict({**config.to_dict(), "model": init_model.config.to_dict()})
        policy, reference = build_models(config, backend=backend, weights=init_model.export_weights())
    else:
        policy, reference = build_models(config, backend=backend)
    pairs = _pairs(args, config.max_len)
    if args.resume:
        saved = load_checkpoint(os.path.join(os.path.dirname(args.resume), "reference.safetensors"))
        reference.load_weights(saved.weights)
    elif not args.init and config.sft_steps:
        losses = warmup_pretrain(policy, pairs, steps=config.sft_steps, lr=config.sft_lr,
                                 batch_size=config.batch_size, seed=config.seed, max_len=config.max_len)
        print(f"SFT warm-up: {len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
        reference.load_weights(policy.export_weights())
    freeze(reference)
    os.makedirs(args.out, exist_ok=True)
    save_checkpoint(os.path.join(args.out, "reference.safetensors"), reference, config)

    def show(row):
        if "loss" in row:
            print(f"  step {row['step']:4d}  loss {row['loss']:.4f}  margin {row['rewards/margins']:+.4f}  "
                  f"accuracy {row['rewards/accuracies']:.2f}  grad_norm {row['grad_norm']:.3f}")
        elif "eval/loss" in row:
            print(f"  eval @ {row['step']:4d}  loss {row['eval/loss']:.4f}  margin {row['eval/rewards/margins']:+.4f}"
                  f"  accuracy {row['eval/rewards/accuracies']:.2f}")

    result = train_dpo(policy, reference, pairs, config, out_dir=args.out, resume_from=args.resume, on_log=show)
    shown = result.eval_pairs or result.train_pairs
    print(f"margins on the {'held-out' if result.eval_pairs else 'training'} pairs:")
    print(margin_table(evaluate_margins(policy, reference, shown, config)))
    metrics_path = os.path.join(args.out, "metrics.jsonl")
    print(f"wrote {result.checkpoint}, {metrics_path}")
    _write_plot(args.out, read_metrics(metrics_path))  # the whole run, also when it was resumed
    return 0


def cmd_eval(args):
    from .evaluation import evaluate_margins, margin_table

    backend = _backend(args)
    policy, config, _ = _model_from_checkpoint(args.checkpoint, backend)
    reference_path = args.reference or os.path.join(os.path.dirname(args.checkpoint), "reference.safetensors")
    if not os.path.isfile(reference_path):
        raise CheckpointError(f"{reference_path}: no reference checkpoint; pass --reference CKPT")
    reference, _, _ = _model_from_checkpoint(reference_path, backend)
    margins = evaluate_margins(policy, reference, _pairs(args, config.max_len), config)
    print(margin_table(margins))
    print(f"accuracy {np.mean([m.margin > 0 for m in margins]):.2f}")
    return 0


def cmd_generate(args):
    from .generation import generate
    from .tokenizer import InstructionTokenizer

    model, _, _ = _model_from_checkpoint(args.checkpoint, _backend(args))
    tokenizer = InstructionTokenizer()
    for prompt in args.prompt:
        text = generate(model, tokenizer, prompt, max_new_tokens=args.max_new_tokens,
                        temperature=args.temperature, top_k=args.top_k, seed=args.seed or 0)
        print(f"{prompt}\n  -> {text}")
    return 0


COMMANDS = {"demo": cmd_demo, "sft": cmd_sft, "train": cmd_train, "eval": cmd_eval, "generate": cmd_generate}


def main(argv=None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 failed, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        status = COMMANDS[args.command](args)
        if status == 0 and _TUNING_REPORT:
            print(_TUNING_REPORT.pop(), file=sys.stderr)
        return status
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (PreferenceDataError, CheckpointError, FileNotFoundError, IsADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError, ImportError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

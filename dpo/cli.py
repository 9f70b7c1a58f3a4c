"""Command line: `python -m dpo {demo,sft,train,eval,generate}` (also the `minigrad-dpo` script).

    python -m dpo demo                                   # the whole lesson on the twelve triples
    python -m dpo sft --data prefs.jsonl --out runs/a    # SFT warm-up -> runs/a/sft.safetensors
    python -m dpo train --init runs/a/sft.safetensors --data prefs.jsonl --out runs/a
    python -m dpo train --resume --out runs/a                # continue from the newest checkpoint
    python -m dpo eval --checkpoint runs/a/checkpoint-60 --data prefs.jsonl
    python -m dpo generate --checkpoint runs/a --prompt "Compute 2 + 3."   # a run folder: its newest checkpoint

Exit status (EXIT_STATUS below, also in --help): 0 done; 2 bad input or usage of any
kind (options, files, data, checkpoints, --out, a device that is not there), checked
before any work where possible; 1 a failure at run time (the run diverged, a write
failed); 130 / 143 interrupted by SIGINT / SIGTERM (training saves a checkpoint
first). Every error is one line on stderr, without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys

import numpy as np

from . import run_folder
from .batching import truncation_note
from .chat_template import ChatTemplateError
from .checkpoint import (
    CheckpointError,
    architecture_difference,
    architecture_of,
    latest_checkpoint,
    load_checkpoint,
    remove_leftovers,
    save_model,
    weights_fingerprint,
)
from .config import DPOConfig
from .data import PreferenceDataError, load_preferences, make_preferences
from .formats import read_messages
from .hf_tokenizer import TokenizerFolderError
from .interrupts import RunInterrupted, saving_on_interrupt
from .losses import F_DIVERGENCES, LOSS_TYPE_NAMES
from .metrics import plot_metrics, read_metrics
from .run_folder import RunFolderError

EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 1, 2, 130, 143
EXIT_STATUS = ("exit status: 0 done; 2 bad input or usage (options, files, data, checkpoints, --out, devices); "
               "1 a failure at run time (e.g. the run diverged); 130 / 143 interrupted by SIGINT / SIGTERM "
               "(train saves a checkpoint first and says where)")


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


def _smoothing(text):  # its range, and the loss types that read it, are checked by the loss options (one place)
    return _number(text, lambda v: True, "a number")


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


def _add_out(p, help_text, required=True):
    p.add_argument("--out", metavar="DIR", required=required, default=None, help=help_text)
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in DIR (without it such a DIR is refused)")


def _add_data(p):
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="FILE", default=None,
                   help="preference pairs: JSONL, JSON array or Parquet, in any TRL preference format "
                        "(default: the twelve built-in triples)")
    g.add_argument("--skip-invalid", action="store_true",
                   help="skip malformed or unusable rows (counted and reported) instead of stopping at the first")
    g.add_argument("--max-length", type=_positive_int, default=None,
                   help="cut each prompt + completion row to this many tokens (TRL's; default: off)")
    g.add_argument("--max-prompt-length", type=_positive_int, default=None,
                   help="keep the last N prompt tokens (default: off)")
    g.add_argument("--max-completion-length", type=_positive_int, default=None,
                   help="keep the first N tokens of each completion (default: off)")
    g.add_argument("--truncation-mode", choices=("keep_start", "keep_end"), default=None,
                   help="what --max-length keeps of a row (default keep_start)")


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
    parser = _Parser(prog="python -m dpo", epilog=EXIT_STATUS, description=(
        "Direct Preference Optimization on a tiny GPT, on minigrad (NumPy + numba) or PyTorch."))
    parser.add_argument("--version", action="version", version=f"minigrad-dpo {run_folder.version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = commands.add_parser("demo", help="the whole lesson on the twelve triples (SFT, DPO, report)",
                               description="SFT warm-up, frozen reference, DPO, margin table and generations; "
                                           "exits 0 when the loss fell and the margin and accuracy rose.")
    _add_runtime(demo)
    _add_data(demo)
    _add_training(demo)
    _add_out(demo, "also write metrics.jsonl, a plot and a checkpoint", required=False)

    sft = commands.add_parser("sft", help="supervised warm-up on prompt -> chosen",
                              description="Next-token training on the chosen completions; writes DIR/sft.safetensors.")
    _add_runtime(sft)
    _add_data(sft)
    _add_training(sft, sft_only=True)
    _add_out(sft, "output folder")

    train = commands.add_parser("train", help="DPO training",
                                description="DPO against a frozen reference (the --init model, or a fresh SFT "
                                            "warm-up); writes checkpoint, reference, metrics.jsonl and a plot to DIR.")
    _add_runtime(train)
    _add_data(train)
    _add_training(train)
    start = train.add_mutually_exclusive_group()
    start.add_argument("--init", metavar="CKPT", default=None,
                       help="start policy and reference from this checkpoint (e.g. from `sft`)")
    start.add_argument("--resume", metavar="CKPT", nargs="?", const=NEWEST, default=None,
                       help="continue the run in --out from CKPT, a checkpoint-<step> folder of it (default: the "
                            "newest); its config, data file and reference are used and checked")
    train.add_argument("--precompute-ref-log-probs", action="store_true", default=None,
                       help="store the reference log-probs in DIR and reuse them while the reference, data, "
                            "tokenizer and length settings are unchanged (TRL's option)")
    train.add_argument("--checkpoint-every", type=_non_negative_int, default=None,
                       help="steps between checkpoints (default 0: only at the end and on an interrupt)")
    train.add_argument("--save-total-limit", type=_positive_int, default=None,
                       help="keep at most this many checkpoint-<step> folders, deleting the oldest (default: all)")
    _add_out(train, "the run folder (run.json, reference, checkpoint-<step>/, metrics); with --resume CKPT, "
                    "default: the folder CKPT is in", required=False)

    evaluate = commands.add_parser("eval", help="reward margins of a trained policy",
                                   description="Per-pair log-probs, rewards and margins against the reference.")
    _add_runtime(evaluate)
    _add_data(evaluate)
    evaluate.add_argument("--checkpoint", metavar="CKPT", required=True,
                          help="the policy: a checkpoint-<step> folder, a model file, or a run folder (its newest "
                               "checkpoint)")
    evaluate.add_argument("--reference", metavar="CKPT", default=None,
                          help="the reference (default: the run folder's reference.safetensors); it must be the one "
                               "the policy was trained against")

    gen = commands.add_parser("generate", help="complete prompts with a trained model",
                              description="Greedy (temperature 0) or sampled completions.")
    _add_runtime(gen)
    gen.add_argument("--checkpoint", metavar="CKPT", required=True,
                     help="a checkpoint-<step> folder, a model file, or a run folder (its newest checkpoint)")
    gen.add_argument("--prompt", action="append", default=[], help="a prompt (repeat for several)")
    gen.add_argument("--system", default=None, help="a system message before each --prompt")
    gen.add_argument("--messages", action="append", default=[], metavar="FILE_OR_JSON",
                     help='a conversation ending with a user turn: JSON [{"role": ..., "content": ...}, ...] '
                          "or a file holding it (repeat for several)")
    gen.add_argument("--max-new-tokens", type=_positive_int, default=48)
    gen.add_argument("--temperature", type=_number_at_least_zero, default=0.0, help="0 = greedy (default)")
    gen.add_argument("--top-k", type=_positive_int, default=None)
    for command in commands.choices.values():
        command.epilog = EXIT_STATUS
    return parser


NEWEST = ""  # --resume given without a path


# ---- helpers ----------------------------------------------------------------------------
def _backend(args):
    from backends import get_backend

    try:
        return get_backend(args.backend, device=args.device, dtype=args.dtype)
    except (ValueError, ImportError, RuntimeError) as error:  # unknown device, torch or CUDA absent
        raise UsageError(str(error)) from None


def _pairs(args, max_len, config=None):
    if args.data is None:
        pairs = make_preferences()
    else:
        pairs = load_preferences(args.data, skip_invalid=args.skip_invalid, max_len=max_len, config=config)
        if pairs.skipped:
            print(f"skipped {len(pairs.skipped)} invalid row(s) of {args.data}; first: {pairs.skipped[0].reason}",
                  file=sys.stderr)
    note = truncation_note(pairs, max_len=max_len, config=config)
    if note:
        print(f"{args.data or 'the built-in pairs'}: {note}", file=sys.stderr)
    return pairs


# command-line option -> DPOConfig field (sft's --lr and --steps are the SFT warm-up's)
CONFIG_OPTIONS = {"batch_size": "batch_size", "lr": "lr", "beta": "beta", "loss_type": "loss_type",
                  "loss_weights": "loss_weights", "label_smoothing": "label_smoothing", "epochs": "epochs",
                  "max_steps": "max_steps", "eval_fraction": "eval_fraction", "sft_steps": "sft_steps",
                  "checkpoint_every": "checkpoint_every", "seed": "seed", "steps": "sft_steps",
                  "max_length": "max_length", "max_prompt_length": "max_prompt_length",
                  "max_completion_length": "max_completion_length", "truncation_mode": "truncation_mode",
                  "precompute_ref_log_probs": "precompute_ref_log_probs", "save_total_limit": "save_total_limit"}


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
    try:
        config = DPOConfig.from_dict(checkpoint.config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{checkpoint.path}: its config is not usable here ({error})") from None
    model = TinyGPT(config.model, backend=backend)
    difference = architecture_difference(checkpoint.architecture, architecture_of(model))
    if difference:
        raise CheckpointError(f"{checkpoint.path}: its architecture and its config disagree ({difference})")
    try:
        model.load_weights(checkpoint.weights)
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{checkpoint.path}: its weights do not fit its architecture ({error})") from None
    return model, config, checkpoint


def _check_reference(policy_checkpoint, policy, reference, reference_path):
    """One clear error when the reference is not the one the policy was trained against."""
    difference = architecture_difference(architecture_of(policy), architecture_of(reference))
    if difference:
        raise CheckpointError(f"reference {reference_path} has another architecture than the policy "
                              f"{policy_checkpoint.path} (policy vs reference: {difference})")
    recorded = policy_checkpoint.reference
    if recorded and recorded != weights_fingerprint(reference.export_weights()):
        raise CheckpointError(f"reference {reference_path} is not the reference {policy_checkpoint.path} was trained "
                              f"against (weight fingerprints {recorded[:12]} recorded, "
                              f"{weights_fingerprint(reference.export_weights())[:12]} given)")


def _run_folder_of(checkpoint_path):
    """The run folder of a checkpoint-<step> folder (its parent), or the folder of a model file."""
    return os.path.dirname(os.path.abspath(os.fspath(checkpoint_path).rstrip("/\\")))


def _say(notes):
    for note in notes:
        print(note, file=sys.stderr)


def _write_plot(out_dir, rows):
    note = plot_metrics(rows, os.path.join(out_dir, "metrics.png"))
    print(note or f"plot: {os.path.join(out_dir, 'metrics.png')}")


# ---- commands ---------------------------------------------------------------------------
def cmd_demo(args):
    from .demo import run_demo

    config = _config(args)
    if args.out:
        _say(run_folder.prepare_out(args.out, overwrite=args.overwrite))
    backend = _backend(args)
    pairs = _pairs(args, config.max_len, config)
    result = run_demo(backend, config=config, pairs=pairs, out_dir=args.out)
    if args.out:
        _write_plot(args.out, result.result.history)
    return 0 if result.succeeded else EXIT_FAILED


def cmd_sft(args):
    from .training import build_models, warmup_pretrain

    config = _config(args)
    path = os.path.join(args.out, "sft.safetensors")
    run_folder.check_writable(args.out)
    if os.path.exists(path) and not args.overwrite:
        raise RunFolderError(f"{path} exists; pass --overwrite to replace it, or choose another --out")
    removed = remove_leftovers(args.out)
    if removed:
        _say([f"{args.out}: removed {len(removed)} temporary file(s) left by an interrupted write"])
    backend = _backend(args)
    pairs = _pairs(args, config.max_len, config)
    policy, _ = build_models(config, backend=backend)
    losses = warmup_pretrain(policy, pairs, steps=config.sft_steps, lr=config.sft_lr,
                             batch_size=config.batch_size, seed=config.seed, max_len=config.max_len,
                             config=config, divergence_factor=config.divergence_sft_factor,
                             log=lambda step, loss: print(f"  sft step {step:3d}  loss {loss:.4f}")
                             if step % 10 == 0 or step == config.sft_steps else None)
    save_model(path, policy, config, step=len(losses))
    print(f"SFT: loss {losses[0]:.4f} -> {losses[-1]:.4f}; wrote {path}")
    return 0


def _resume_plan(args):
    """(out, checkpoint, config, data path) of a resumed run, everything checked."""
    if args.resume == NEWEST:
        if not args.out:
            raise UsageError("train: --resume without a checkpoint needs --out DIR (the run to continue)")
        out = args.out
    else:
        out = args.out or _run_folder_of(args.resume)
    _say(run_folder.prepare_out(out, resume=True))
    run = run_folder.read_run(out)
    if args.resume == NEWEST:
        path = latest_checkpoint(out)
        if path is None:
            raise RunFolderError(f"--resume: {out} holds no checkpoint-<step> folder yet (the run was stopped before "
                                 "its first checkpoint); start it again with --overwrite")
    else:
        path = args.resume
        if os.path.realpath(_run_folder_of(path)) != os.path.realpath(out):
            raise RunFolderError(f"--resume {path} is not a checkpoint of the run in --out {out}")
    checkpoint = load_checkpoint(path)
    if not checkpoint.optimizer_state():
        raise CheckpointError(f"--resume {checkpoint.path}: a model file without optimizer state, not a training "
                              "checkpoint (use --init to start a new run from it)")
    config = _config(args, base=DPOConfig.from_dict(checkpoint.config))
    from .training import config_changes

    changes = config_changes(checkpoint.config, config)
    if changes:
        raise UsageError(f"--resume {checkpoint.path}: the options change the run's configuration ({changes}); "
                         "only --epochs, --max-steps, --checkpoint-every and --save-total-limit may change")
    data = run_folder.resume_data(run, args.data, out)
    args.skip_invalid = args.skip_invalid or bool(run["data"].get("skip_invalid"))  # the same rows as the run's
    return out, checkpoint, config, data


def cmd_train(args):
    from .evaluation import evaluate_margins, margin_table
    from .training import build_models, freeze, train_dpo, warmup_pretrain

    if args.init and args.sft_steps is not None:
        raise UsageError("train: --sft-steps has no effect with --init (the --init model replaces the SFT "
                         "warm-up); drop one of them")
    if args.resume is not None:
        if args.overwrite:
            raise UsageError("train: --overwrite and --resume contradict each other; choose one")
        out, checkpoint, config, args.data = _resume_plan(args)
    else:
        if not args.out:
            raise UsageError("train: the following arguments are required: --out")
        out, checkpoint = args.out, None
        config = _config(args)
        _say(run_folder.prepare_out(out, overwrite=args.overwrite, keep=[args.init, args.data]))
    backend = _backend(args)
    reference_path = os.path.join(out, run_folder.REFERENCE_FILE)
    if args.init:
        init_model, _, _ = _model_from_checkpoint(args.init, backend)
        if init_model.config != config.model:
            config = DPOConfig.from_dict({**config.to_dict(), "model": init_model.config.to_dict()})
        policy, reference = build_models(config, backend=backend, weights=init_model.export_weights())
    else:
        policy, reference = build_models(config, backend=backend)
    pairs = _pairs(args, config.max_len, config)
    if checkpoint is not None:
        saved, _, _ = _model_from_checkpoint(reference_path, backend)
        reference.load_weights(saved.export_weights())
        _check_reference(checkpoint, policy, reference, reference_path)
        note = run_folder.repair_metrics(os.path.join(out, run_folder.METRICS_FILE))
        if note:
            _say([note])
    else:
        if not args.init and config.sft_steps:
            losses = warmup_pretrain(policy, pairs, steps=config.sft_steps, lr=config.sft_lr,
                                     batch_size=config.batch_size, seed=config.seed, max_len=config.max_len,
                                     config=config, divergence_factor=config.divergence_sft_factor)
            print(f"SFT warm-up: {len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
            reference.load_weights(policy.export_weights())
        save_model(reference_path, reference, config)
        run_folder.write_run(out, {
            "command": "train", "config": config.to_dict(),
            "data": {**run_folder.data_record(args.data), "skip_invalid": args.skip_invalid},
            "tokenizer": {"name": "InstructionTokenizer", "vocab_size": config.model.vocab_size},
            "init": os.path.abspath(args.init) if args.init else None,
            "reference": {"path": run_folder.REFERENCE_FILE,
                          "fingerprint": weights_fingerprint(reference.export_weights()),
                          "architecture": architecture_of(reference)},
            "backend": {"name": args.backend, "device": args.device or "cpu", "dtype": args.dtype},
            "versions": run_folder.versions(),
        })
    freeze(reference)

    def show(row):
        if "loss" in row:
            print(f"  step {row['step']:4d}  loss {row['loss']:.4f}  margin {row['rewards/margins']:+.4f}  "
                  f"accuracy {row['rewards/accuracies']:.2f}  grad_norm {row['grad_norm']:.3f}", flush=True)
        elif "eval/loss" in row:
            print(f"  eval @ {row['step']:4d}  loss {row['eval/loss']:.4f}  margin {row['eval/rewards/margins']:+.4f}"
                  f"  accuracy {row['eval/rewards/accuracies']:.2f}", flush=True)

    result = train_dpo(policy, reference, pairs, config, out_dir=out,
                       resume_from=checkpoint.path if checkpoint else None, on_log=show)
    if checkpoint is not None and result.steps == result.start_step:
        print(f"nothing left to do: {checkpoint.path} is at step {result.steps} of {result.total_steps}; "
              "raise --epochs or --max-steps to train further")
        return 0
    shown = result.eval_pairs or result.train_pairs
    print(f"margins on the {'held-out' if result.eval_pairs else 'training'} pairs:")
    print(margin_table(evaluate_margins(policy, reference, shown, config)))
    metrics_path = os.path.join(out, run_folder.METRICS_FILE)
    print(f"wrote {result.checkpoint}, {metrics_path}")
    _write_plot(out, read_metrics(metrics_path))  # the whole run, also when it was resumed
    return 0


def cmd_eval(args):
    from .evaluation import evaluate_margins, margin_table

    backend = _backend(args)
    policy, config, checkpoint = _model_from_checkpoint(args.checkpoint, backend)
    reference_path = args.reference
    if reference_path is None:
        reference_path = os.path.join(_run_folder_of(checkpoint.path), run_folder.REFERENCE_FILE)
    if not os.path.isfile(reference_path):
        raise CheckpointError(f"{reference_path}: no reference checkpoint; pass --reference CKPT")
    reference, _, _ = _model_from_checkpoint(reference_path, backend)
    _check_reference(checkpoint, policy, reference, reference_path)
    config = _config(args, base=config)  # the checkpoint's config, with length options given here
    margins = evaluate_margins(policy, reference, _pairs(args, config.max_len, config), config)
    print(margin_table(margins))
    print(f"accuracy {np.mean([m.margin > 0 for m in margins]):.2f}")
    return 0


def cmd_generate(args):
    from .generation import generate
    from .tokenizer import InstructionTokenizer

    if not args.prompt and not args.messages:
        raise UsageError("generate: give --prompt TEXT or --messages FILE_OR_JSON (see --help)")
    if args.system is not None and not args.prompt:
        raise UsageError("generate: --system goes with --prompt; put a system message in --messages instead")
    try:
        conversations = [read_messages(value) for value in args.messages]
    except ValueError as error:
        raise UsageError(str(error)) from None
    model, _, _ = _model_from_checkpoint(args.checkpoint, _backend(args))
    tokenizer = InstructionTokenizer()
    for prompt in args.prompt + conversations:
        text = generate(model, tokenizer, prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                        top_k=args.top_k, seed=args.seed or 0, system=args.system if isinstance(prompt, str) else None,
                        notify=lambda message: print(f"note: {message}", file=sys.stderr))
        shown = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        print(f"{shown}\n  -> {text}")
    return 0


COMMANDS = {"demo": cmd_demo, "sft": cmd_sft, "train": cmd_train, "eval": cmd_eval, "generate": cmd_generate}
TRAINING_COMMANDS = ("sft", "train")  # a signal ends them after the current step, with a checkpoint (train)
BAD_INPUT = (UsageError, RunFolderError, PreferenceDataError, CheckpointError, FileNotFoundError, IsADirectoryError,
             NotADirectoryError, PermissionError, TokenizerFolderError, ChatTemplateError)


class _Terminated(BaseException):
    """SIGTERM outside training: stop like Ctrl-C, with exit status 143."""


@contextlib.contextmanager
def _terminate_like_interrupt():
    def handler(signum, frame):
        raise _Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _resume_hint(args, error):
    if error.checkpoint:
        out = os.path.dirname(os.path.abspath(error.checkpoint))
        return f"{error}; continue with: python -m dpo train --resume --out {out}"
    return str(error)


def main(argv=None) -> int:
    """Run the CLI; returns the exit status (see EXIT_STATUS)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        guard = saving_on_interrupt() if args.command in TRAINING_COMMANDS else _terminate_like_interrupt()
        with guard:
            return COMMANDS[args.command](args)
    except SystemExit as exit_:  # --help, --version
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except BAD_INPUT as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except RunInterrupted as error:
        print(_resume_hint(args, error), file=sys.stderr)
        return error.exit_code
    except (ValueError, TypeError, ImportError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted (SIGINT)", file=sys.stderr)
        return EXIT_SIGINT
    except _Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        return EXIT_SIGTERM

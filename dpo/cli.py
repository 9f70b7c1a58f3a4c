"""Command line: `python -m dpo {demo,sft,train,eval,generate,frontier}` (also the `minigrad-dpo` script).

    python -m dpo demo                                   # the whole lesson on the twelve triples
    python -m dpo sft --data prefs.jsonl --out runs/a    # SFT warm-up -> runs/a/sft.safetensors
    python -m dpo train --init runs/a/sft.safetensors --data prefs.jsonl --out runs/a
    python -m dpo train --resume --out runs/a                # continue from the newest checkpoint
    python -m dpo eval --checkpoint runs/a/checkpoint-60 --data prefs.jsonl
    python -m dpo generate --checkpoint runs/a --prompt "Compute 2 + 3."   # a run folder: its newest checkpoint
    python -m dpo train --model SmolLM2-135M-Instruct --data prefs.jsonl --out runs/b   # -> runs/b/model/
    python -m dpo frontier --out runs/frontier [--quick]   # reward vs KL against a known reward

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
import re
import signal
import sys

import numpy as np

from . import distributed, run_folder
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
from .config import DPOConfig, apply_values, config_options, load_config_file
from .data import PreferenceDataError, load_preferences, make_preferences
from .formats import read_messages
from .hf_tokenizer import TokenizerFolderError
from .interrupts import RunInterrupted, saving_on_interrupt
from .metrics import plot_metrics, read_metrics
from .pretrained import PretrainedError
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


def _integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _positive_int(text):
    value = _integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _float(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _number_at_least_zero(text):
    value = _float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _fraction_up_to_one(text):
    value = _float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _non_negative_int(text):
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _names_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    return names[0] if len(names) == 1 else names


def _floats(text):
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


# a ConfigOption's kind -> the argparse type that turns the text into a value; bounds are DPOConfig's to check
_PARSE = {int: _integer, float: _float, str: str, "loss_types": _names_list, "floats": _floats}


def _add_runtime(p, seed=True):
    g = p.add_argument_group("backend")
    g.add_argument("--backend", choices=("numpy", "torch"), default="numpy",
                   help="numpy = minigrad (NumPy + numba, no framework); torch = PyTorch (default: numpy)")
    g.add_argument("--device", default=None, help="cpu or cuda (torch backend only; default cpu)")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="default: float32")
    if seed:
        g.add_argument("--seed", type=_non_negative_int, default=None, help="seeds sampling (default 0)")


MODEL_DEST = "config:model_path"  # --model fills DPOConfig.model_path, as --model-name-or-path does


def _add_model(p, instead_of=None):
    """--model DIR, before the config options (which then leave the flag to it)."""
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="DIR", dest=MODEL_DEST, default=None,
                   help="a Hugging Face model folder (GPT-2, Llama, Qwen2: config.json, safetensors, tokenizer) "
                        "used instead of TinyGPT, with its own tokenizer and chat template"
                        + (f"; instead of {instead_of}" if instead_of else ""))


def _add_data(p):
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="FILE", default=None,
                   help="preference pairs: JSONL, JSON array or Parquet, in any TRL preference format "
                        "(default: the twelve built-in triples)")
    g.add_argument("--skip-invalid", action="store_true",
                   help="skip malformed or unusable rows (counted and reported) instead of stopping at the first")


def _add_out(p, help_text, required=True):
    p.add_argument("--out", metavar="DIR", required=required, default=None, help=help_text)
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in DIR (without it such a DIR is refused)")


def _flag(name):
    return "--" + name.replace("_", "-")


def _dest(path):
    return "config:" + ".".join(path)


# the data length options, which every command that reads --data takes
LENGTH_OPTIONS = {("max_length",): (), ("max_prompt_length",): (), ("max_completion_length",): (),
                  ("truncation_mode",): ()}
# `sft` trains the SFT warm-up: its --learning-rate/--lr and --steps set sft_lr and sft_steps
SFT_OPTIONS = {("batch_size",): (), ("seed",): (), ("sft_lr",): ("learning_rate", "lr"), ("sft_steps",): ("steps",),
               ("divergence_sft_factor",): (), **LENGTH_OPTIONS}


def _add_config_options(p, only=None):
    """One option per ConfigOption (see `dpo.config.config_options`): TRL's name first, the others as
    aliases; default and help from DPOConfig. `only`: {path: extra names} to offer just those
    (and, unless it is LENGTH_OPTIONS, the model size). Options another part of the parser
    already defines are left to it. Values stay None unless given, so --config FILE and the
    checkpoint of --resume can sit underneath."""
    p.add_argument("--config", metavar="FILE", default=None,
                   help="options from a JSON file (YAML with PyYAML installed), keyed by the option names "
                        "below without the dashes; options given here override it")
    g = p.add_argument_group("options (defaults from DPOConfig)")
    taken = set(p._option_string_actions)
    for opt in config_options():
        model_size = opt.path[0] == "model" and only is not LENGTH_OPTIONS
        if only is not None and not model_size and opt.path not in only:
            continue
        names = [*opt.names, *only.get(opt.path, ())] if only else list(opt.names)
        flags = [f for f in dict.fromkeys(_flag(n) for n in names) if f not in taken]
        if not flags:
            continue
        default = ",".join(opt.default) if isinstance(opt.default, (list, tuple)) else opt.default
        shown = f" (default: {default})" if default is not None else "" if "default" in opt.help else " (default: off)"
        if opt.kind is bool:
            g.add_argument(*flags, dest=_dest(opt.path), action=argparse.BooleanOptionalAction, default=None,
                           help=opt.help + shown)
        else:
            metavar = {"loss_types": "NAME[,NAME...]", "floats": "W[,W...]", int: "N", float: "X"}.get(opt.kind, "NAME")
            g.add_argument(*flags, dest=_dest(opt.path), type=_PARSE.get(opt.kind, str), default=None,
                           metavar=metavar, help=opt.help + shown)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m dpo", epilog=EXIT_STATUS, description=(
        "Direct Preference Optimization on a tiny GPT, on minigrad (NumPy + numba) or PyTorch."))
    parser.add_argument("--version", action="version", version=f"minigrad-dpo {run_folder.version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = commands.add_parser("demo", help="the whole lesson on the twelve triples (SFT, DPO, report)",
                               description="SFT warm-up, frozen reference, DPO, margin table and generations; "
                                           "exits 0 when the loss fell and the margin and accuracy rose.")
    _add_runtime(demo, seed=False)
    _add_data(demo)
    _add_config_options(demo)
    _add_out(demo, "also write metrics.jsonl, a plot and a checkpoint", required=False)

    sft = commands.add_parser("sft", help="supervised warm-up on prompt -> chosen",
                              description="Next-token training on the chosen completions; writes DIR/sft.safetensors.")
    _add_runtime(sft, seed=False)
    _add_data(sft)
    _add_model(sft)
    _add_config_options(sft, only=SFT_OPTIONS)
    _add_out(sft, "output folder (with --model: the trained model as a Hugging Face folder DIR/model)")

    train = commands.add_parser("train", help="DPO training",
                                description="DPO against a frozen reference (the --init model, or a fresh SFT "
                                            "warm-up); writes run.json, the reference, checkpoint-<step>/ folders, "
                                            "metrics.jsonl and a plot to DIR, which holds this one run.")
    _add_runtime(train, seed=False)
    train.add_argument("--fsdp", action="store_true",
                       help="under torchrun with --backend torch: shard the policy over the processes with FSDP2 "
                            "(fully_shard); checkpoints hold the whole model (see docs/distributed.md)")
    _add_data(train)
    start = train.add_mutually_exclusive_group()
    start.add_argument("--init", metavar="CKPT", default=None,
                       help="start policy and reference from this checkpoint (e.g. from `sft`)")
    start.add_argument("--resume", metavar="CKPT", nargs="?", const=NEWEST, default=None,
                       help="continue the run in --out from CKPT, a checkpoint-<step> folder of it (default: the "
                            "newest); its config, data file and reference are used and checked")
    _add_out(train, "the run folder (run.json, reference, checkpoint-<step>/, metrics; with --model: the trained "
                    "policy as a Hugging Face folder DIR/model); with --resume CKPT, default: the folder CKPT is in",
             required=False)
    _add_model(train)
    _add_config_options(train)

    evaluate = commands.add_parser("eval", help="reward margins of a trained policy",
                                   description="Per-pair log-probs, rewards and margins against the reference.")
    _add_runtime(evaluate, seed=False)
    _add_data(evaluate)
    evaluate.add_argument("--checkpoint", metavar="CKPT", default=None,
                          help="the policy: a checkpoint-<step> folder, a model file, or a run folder (its newest "
                               "checkpoint)")
    evaluate.add_argument("--reference", metavar="CKPT", default=None,
                          help="the reference (default: the run folder's reference.safetensors; with --model: a "
                               "Hugging Face folder, required); it must be the one the policy was trained against")
    _add_model(evaluate, instead_of="--checkpoint")
    _add_config_options(evaluate, only=LENGTH_OPTIONS)

    gen = commands.add_parser("generate", help="complete prompts with a trained model",
                              description="Greedy (temperature 0) or sampled completions.")
    _add_runtime(gen)
    gen.add_argument("--checkpoint", metavar="CKPT", default=None,
                     help="a checkpoint-<step> folder, a model file, or a run folder (its newest checkpoint)")
    _add_model(gen, instead_of="--checkpoint")
    gen.add_argument("--prompt", action="append", default=[], help="a prompt (repeat for several)")
    gen.add_argument("--system", default=None, help="a system message before each --prompt")
    gen.add_argument("--messages", action="append", default=[], metavar="FILE_OR_JSON",
                     help='a conversation ending with a user turn: JSON [{"role": ..., "content": ...}, ...] '
                          "or a file holding it (repeat for several)")
    gen.add_argument("--max-new-tokens", type=_positive_int, default=48)
    gen.add_argument("--temperature", type=_number_at_least_zero, default=0.0, help="0 = greedy (default)")
    gen.add_argument("--top-k", type=_positive_int, default=None)
    gen.add_argument("--top-p", type=_fraction_up_to_one, default=None, help="nucleus sampling mass, in (0, 1]")
    _add_frontier(commands)
    for command in commands.choices.values():
        command.epilog = EXIT_STATUS
    return parser


NEWEST = ""  # --resume given without a path


def _add_frontier(commands):
    """`frontier`: the reward–KL experiment against a known reward (options: dpo/frontier/command.py)."""
    from .frontier.command import add_arguments

    frontier = commands.add_parser("frontier", help="reward-KL frontier of DPO, IPO, SimPO, preferred-FT on a task "
                                                    "with a known reward",
                                   description="SFT a reference on synthetic reviews, sample and label preferences "
                                               "by the true reward, train each loss type and beta, and plot true "
                                               "reward against KL to the reference (docs/frontier.md).")
    _add_runtime(frontier)
    add_arguments(frontier)


# ---- helpers ----------------------------------------------------------------------------
def _backend(args):
    from backends import get_backend

    try:
        backend = get_backend(args.backend, device=distributed.local_device(args.device), dtype=args.dtype)
    except (ValueError, ImportError, RuntimeError) as error:  # unknown device, torch or CUDA absent
        raise UsageError(str(error)) from None
    backend.tune_process()  # an entry point's choice, never the library's (logged once, see minigrad.accel)
    return backend


def _pairs(args, max_len, config=None, tokenizer=None):
    if args.data is None:
        if tokenizer is not None:
            raise UsageError(f"{args.command} --model: give --data FILE (the built-in pairs are for TinyGPT)")
        pairs = make_preferences()
    else:
        pairs = load_preferences(args.data, skip_invalid=args.skip_invalid, max_len=max_len, config=config,
                                 tokenizer=tokenizer)
        if pairs.skipped:
            print(f"skipped {len(pairs.skipped)} invalid row(s) of {args.data}; first: {pairs.skipped[0].reason}",
                  file=sys.stderr)
    note = truncation_note(pairs, tokenizer, max_len=max_len, config=config)
    if note:
        print(f"{args.data or 'the built-in pairs'}: {note}", file=sys.stderr)
    return pairs


def _config(args, base: DPOConfig | None = None) -> DPOConfig:
    """DPOConfig from, lowest first: `base` (default DPOConfig()), the --config file, the options given."""
    try:
        from_file = load_config_file(args.config) if getattr(args, "config", None) else {}
    except ValueError as error:
        raise UsageError(str(error)) from None
    given = {}
    for dest, value in vars(args).items():
        if dest.startswith("config:") and value is not None:
            given[tuple(dest[len("config:"):].split("."))] = value
    values = apply_values((base or DPOConfig()).to_dict(), {**from_file, **given})
    try:
        return DPOConfig.from_dict(values)
    except ValueError as error:
        raise UsageError(_where(str(error), given, from_file, args)) from None


def _where(message, given, from_file, args):
    """The option (or config file) a DPOConfig error is about, put in front of its message."""
    best = None
    for source, paths in (("flag", given), ("file", from_file)):
        for path in paths:
            match = re.search(rf"\b{re.escape(path[-1])}\b", message)
            if match and (best is None or match.start() < best[0]):
                best = (match.start(), source, path)
    if best is None:
        return message
    _, source, path = best
    if source == "file":
        return f"{args.config}: {message}"
    option = next(o for o in config_options() if o.path == path)
    return f"argument {_flag(option.names[0])}: {message}"


def _check_precision(backend, config):
    """--bf16 on a backend without mixed precision: a usage error before any work. Also notes,
    on stderr, the settings that train differently under TRL 1.16."""
    from .train_options import precision

    try:
        with precision(backend, config):
            pass
    except ValueError as error:
        raise UsageError(f"argument --bf16: {error}") from None
    for note in config.trl_differences():
        print(f"note: {note}", file=sys.stderr)


def _model_from_checkpoint(path, backend):
    """(model, config, checkpoint): a TinyGPT, or the model of the run's Hugging Face folder
    (config.model_path), with the checkpoint's weights."""
    from .model import TinyGPT
    from .pretrained import load_pretrained

    checkpoint = load_checkpoint(path)
    try:
        config = DPOConfig.from_dict(checkpoint.config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{checkpoint.path}: its config is not usable here ({error})") from None
    if config.model_path is not None:
        model = load_pretrained(config.model_path, backend=backend)
    else:
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


def _tokenizer_of(config):
    """The run's tokenizer: its model folder's (config.model_path), else the byte tokenizer."""
    if config.model_path is None:
        from .tokenizer import InstructionTokenizer

        return InstructionTokenizer()
    from .hf_tokenizer import load_tokenizer

    return load_tokenizer(config.model_path)


def _pretrained(path, backend):
    """(model, tokenizer) from a Hugging Face model folder."""
    from .hf_tokenizer import load_tokenizer
    from .pretrained import load_pretrained

    model = load_pretrained(path, backend=backend)
    tokenizer = load_tokenizer(path)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise PretrainedError(f"{path}: the tokenizer has {tokenizer.vocab_size} ids, the model's vocabulary "
                              f"only {model.config.vocab_size}")
    return model, tokenizer


def _save_model(model, out_dir):
    path = os.path.join(out_dir, "model")
    model.save_pretrained(path)
    return path


def _write_plot(out_dir, rows, config):
    names = [config.loss_type] if isinstance(config.loss_type, str) else config.loss_type
    weights = config.loss_weights or [1.0] * len(names)
    title = " + ".join(n if w == 1 else f"{w:g}·{n}" for n, w in zip(names, weights)) + f"  (β = {config.beta:g})"
    note = plot_metrics(rows, os.path.join(out_dir, "metrics.png"), title=title)
    print(note or f"plot: {os.path.join(out_dir, 'metrics.png')}")


# ---- commands ---------------------------------------------------------------------------
def cmd_demo(args):
    from .demo import run_demo

    config = _config(args)
    if config.model_path is not None:
        raise UsageError("demo runs TinyGPT on the built-in triples; train a model folder with train --model DIR")
    if args.out:
        _say(run_folder.prepare_out(args.out, overwrite=args.overwrite))
    backend = _backend(args)
    _check_precision(backend, config)
    pairs = _pairs(args, config.max_len, config)
    result = run_demo(backend, config=config, pairs=pairs, out_dir=args.out)
    if args.out:
        _write_plot(args.out, result.result.history, config)
    return 0 if result.succeeded else EXIT_FAILED


def cmd_sft(args):
    from .training import build_models, warmup_pretrain

    config = _config(args)
    path = os.path.join(args.out, "model" if config.model_path is not None else "sft.safetensors")
    run_folder.check_writable(args.out)
    if os.path.exists(path) and not args.overwrite:
        raise RunFolderError(f"{path} exists; pass --overwrite to replace it, or choose another --out")
    removed = remove_leftovers(args.out)
    if removed:
        _say([f"{args.out}: removed {len(removed)} temporary file(s) left by an interrupted write"])
    backend = _backend(args)
    tokenizer = None
    if config.model_path is not None:
        policy, tokenizer = _pretrained(config.model_path, backend)
    else:
        policy, _ = build_models(config, backend=backend)
    pairs = _pairs(args, config.max_len, config, tokenizer)
    losses = warmup_pretrain(policy, pairs, tokenizer=tokenizer, steps=config.sft_steps, lr=config.sft_lr,
                             batch_size=config.batch_size, seed=config.seed, max_len=config.max_len, config=config,
                             divergence_factor=config.divergence_sft_factor,
                             log=lambda step, loss: print(f"  sft step {step:3d}  loss {loss:.4f}")
                             if step % 10 == 0 or step == config.sft_steps else None)
    if config.model_path is not None:
        path = _save_model(policy, args.out)
    else:
        save_model(path, policy, config, step=len(losses))
    print(f"SFT: loss {losses[0]:.4f} -> {losses[-1]:.4f}; wrote {path}")
    return 0


def _resume_plan(args, dist=distributed.SINGLE):
    """(out, checkpoint, config, data path) of a resumed run, everything checked."""
    if args.resume == NEWEST:
        if not args.out:
            raise UsageError("train: --resume without a checkpoint needs --out DIR (the run to continue)")
        out = args.out
    else:
        out = args.out or _run_folder_of(args.resume)
    if dist.is_main:
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
                         "only its length (--num-train-epochs, --max-steps) and how it is saved, logged and watched "
                         "may change")
    data = run_folder.resume_data(run, args.data, out)
    args.skip_invalid = args.skip_invalid or bool(run["data"].get("skip_invalid"))  # the same rows as the run's
    return out, checkpoint, config, data


def cmd_train(args):
    from .evaluation import evaluate_margins, margin_table
    from .training import build_models, freeze, train_dpo, warmup_pretrain

    if args.init and getattr(args, "config:sft_steps", None) is not None:
        raise UsageError("train: --sft-steps has no effect with --init (the --init model replaces the SFT "
                         "warm-up); drop one of them")
    backend = _backend(args)
    dist = distributed.from_environment(backend, fsdp=args.fsdp)  # under torchrun: joins the process group
    if args.resume is not None:
        if args.overwrite:
            raise UsageError("train: --overwrite and --resume contradict each other; choose one")
        out, checkpoint, config, args.data = _resume_plan(args, dist)
    else:
        if not args.out:
            raise UsageError("train: the following arguments are required: --out")
        out, checkpoint = args.out, None
        # a model folder arrives trained: no SFT warm-up unless --sft-steps asks for one
        config = _config(args, base=DPOConfig(sft_steps=0) if getattr(args, MODEL_DEST, None) else None)
        if config.model_path is not None and args.init:
            raise UsageError("train: --init takes a TinyGPT checkpoint; a model folder starts from --model DIR, "
                             "and --resume finds the run's folder in its checkpoint")
        if dist.is_main:  # one process prepares the folder; the others wait for it below
            _say(run_folder.prepare_out(out, overwrite=args.overwrite, keep=[args.init, args.data, config.model_path]))
    dist.barrier()
    _check_precision(backend, config)
    reference_path = os.path.join(out, run_folder.REFERENCE_FILE)
    if checkpoint is not None and checkpoint.reference_file:  # TR-DPO: the reference moved with the checkpoint
        reference_path = checkpoint.reference_file
    tokenizer = None
    if config.model_path is not None:  # a Hugging Face folder: policy and reference start as its model
        policy, tokenizer = _pretrained(config.model_path, backend)
        reference = policy.to_backend(backend)
    elif args.init:
        init_model, init_config, _ = _model_from_checkpoint(args.init, backend)
        if init_config.model_path is not None:
            raise UsageError(f"train --init {args.init}: a checkpoint of a Hugging Face model; start from its "
                             "folder with --model DIR (e.g. the run's OUT/model)")
        if init_model.config != config.model:
            config = DPOConfig.from_dict({**config.to_dict(), "model": init_model.config.to_dict()})
        policy, reference = build_models(config, backend=backend, weights=init_model.export_weights())
    else:
        policy, reference = build_models(config, backend=backend)
    pairs = _pairs(args, config.max_len, config, tokenizer)
    if checkpoint is not None:
        saved, _, _ = _model_from_checkpoint(reference_path, backend)
        reference.load_weights(saved.export_weights())
        _check_reference(checkpoint, policy, reference, reference_path)
        note = run_folder.repair_metrics(os.path.join(out, run_folder.METRICS_FILE)) if dist.is_main else None
        if note:
            _say([note])
    else:
        if not args.init and config.sft_steps:
            losses = warmup_pretrain(policy, pairs, tokenizer=tokenizer, steps=config.sft_steps, lr=config.sft_lr,
                                     batch_size=config.batch_size, seed=config.seed, max_len=config.max_len,
                                     config=config, divergence_factor=config.divergence_sft_factor)
            if dist.is_main:
                print(f"SFT warm-up: {len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
            reference.load_weights(policy.export_weights())
    if checkpoint is None and dist.is_main:
        save_model(reference_path, reference, config)
        run_folder.write_run(out, {
            "command": "train", "config": config.to_dict(),
            "data": {**run_folder.data_record(args.data), "skip_invalid": args.skip_invalid},
            "tokenizer": {"name": config.model_path or "InstructionTokenizer",
                          "vocab_size": (tokenizer.vocab_size if tokenizer is not None else config.model.vocab_size)},
            "init": os.path.abspath(args.init) if args.init else None,
            "reference": {"path": run_folder.REFERENCE_FILE,
                          "fingerprint": weights_fingerprint(reference.export_weights()),
                          "architecture": architecture_of(reference)},
            "backend": {"name": args.backend, "device": args.device or "cpu", "dtype": args.dtype},
            "distributed": {"world_size": dist.world_size, "per_rank_batch_size": dist.per_rank(config.batch_size),
                            "global_batch_size": config.batch_size, "fsdp": dist.fsdp},
            "versions": run_folder.versions(),
        })
    freeze(reference)

    result = train_dpo(policy, reference, pairs, config, tokenizer=tokenizer, out_dir=out,
                       resume_from=checkpoint.path if checkpoint else None, on_log=_show_row if dist.is_main else None,
                       dist=dist)
    if checkpoint is not None and result.steps == result.start_step:
        dist.close()
        if dist.is_main:
            print(f"nothing left to do: {checkpoint.path} is at step {result.steps} of {result.total_steps}; "
                  "raise --epochs or --max-steps to train further")
        return 0
    shown = result.eval_pairs or result.train_pairs
    # every rank: under FSDP a forward is a collective
    margins = evaluate_margins(policy, reference, shown, config, tokenizer=tokenizer)
    whole = dist.full_copies(policy, None)[0] if config.model_path is not None else None  # FSDP: gathered on rank 0
    dist.close()
    if not dist.is_main:
        return 0
    print(f"margins on the {'held-out' if result.eval_pairs else 'training'} pairs:")
    print(margin_table(margins))
    written = _save_model(whole, out) if config.model_path is not None else result.checkpoint
    metrics_path = os.path.join(out, run_folder.METRICS_FILE)
    print(f"wrote {written}, {metrics_path}")
    _write_plot(out, read_metrics(metrics_path), config)  # the whole run, also when it was resumed
    return 0


def _show_row(row):
    if "loss" in row:
        print(f"  step {row['step']:4d}  loss {row['loss']:.4f}  margin {row['rewards/margins']:+.4f}  "
              f"accuracy {row['rewards/accuracies']:.2f}  grad_norm {row['grad_norm']:.3f}", flush=True)
    elif "eval_loss" in row:
        print(f"  eval @ {row['step']:4d}  loss {row['eval_loss']:.4f}  margin {row['eval_rewards/margins']:+.4f}"
              f"  accuracy {row['eval_rewards/accuracies']:.2f}", flush=True)


def cmd_eval(args):
    from .evaluation import evaluate_margins, margin_table

    backend = _backend(args)
    if getattr(args, MODEL_DEST, None):
        if args.checkpoint or not args.reference:
            raise UsageError("eval --model DIR: give the reference folder as --reference DIR (and no --checkpoint)")
        config = _config(args)
        policy, tokenizer = _pretrained(config.model_path, backend)
        reference, _ = _pretrained(args.reference, backend)
        margins = evaluate_margins(policy, reference, _pairs(args, config.max_len, config, tokenizer), config,
                                   tokenizer=tokenizer)
        print(margin_table(margins))
        print(f"accuracy {np.mean([m.margin > 0 for m in margins]):.2f}")
        return 0
    if not args.checkpoint:
        raise UsageError("eval: give --checkpoint CKPT (TinyGPT) or --model DIR (a Hugging Face folder)")
    policy, config, checkpoint = _model_from_checkpoint(args.checkpoint, backend)
    reference_path = args.reference
    if reference_path is None:  # the one the checkpoint holds (TR-DPO moved it), else the run folder's
        reference_path = checkpoint.reference_file or os.path.join(_run_folder_of(checkpoint.path),
                                                                   run_folder.REFERENCE_FILE)
    if not os.path.isfile(reference_path):
        raise CheckpointError(f"{reference_path}: no reference checkpoint; pass --reference CKPT")
    reference, _, _ = _model_from_checkpoint(reference_path, backend)
    _check_reference(checkpoint, policy, reference, reference_path)
    config = _config(args, base=config)  # the checkpoint's config, with length options given here
    tokenizer = None if config.model_path is None else _tokenizer_of(config)
    margins = evaluate_margins(policy, reference, _pairs(args, config.max_len, config, tokenizer), config,
                               tokenizer=tokenizer)
    print(margin_table(margins))
    print(f"accuracy {np.mean([m.margin > 0 for m in margins]):.2f}")
    return 0


def cmd_generate(args):
    from .generation import generate

    if not args.prompt and not args.messages:
        raise UsageError("generate: give --prompt TEXT or --messages FILE_OR_JSON (see --help)")
    if args.system is not None and not args.prompt:
        raise UsageError("generate: --system goes with --prompt; put a system message in --messages instead")
    try:
        conversations = [read_messages(value) for value in args.messages]
    except ValueError as error:
        raise UsageError(str(error)) from None
    model_path = getattr(args, MODEL_DEST, None)
    if bool(args.checkpoint) == bool(model_path):
        raise UsageError("generate: give one of --checkpoint CKPT (TinyGPT) and --model DIR (a Hugging Face folder)")
    if model_path:
        model, tokenizer = _pretrained(model_path, _backend(args))
    else:
        model, config, _ = _model_from_checkpoint(args.checkpoint, _backend(args))
        tokenizer = _tokenizer_of(config)
    for prompt in args.prompt + conversations:
        text = generate(model, tokenizer, prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                        top_k=args.top_k, top_p=args.top_p, seed=args.seed or 0,
                        system=args.system if isinstance(prompt, str) else None,
                        notify=lambda message: print(f"note: {message}", file=sys.stderr))
        shown = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        print(f"{shown}\n  -> {text}")
    return 0


def cmd_frontier(args):
    from .frontier.command import run

    return run(args, _backend(args))


COMMANDS = {"demo": cmd_demo, "sft": cmd_sft, "train": cmd_train, "eval": cmd_eval, "generate": cmd_generate,
            "frontier": cmd_frontier}
TRAINING_COMMANDS = ("sft", "train")  # a signal ends them after the current step, with a checkpoint (train)
BAD_INPUT = (UsageError, distributed.DistributedError, RunFolderError, PreferenceDataError, CheckpointError,
             FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, TokenizerFolderError,
             ChatTemplateError, PretrainedError)


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


def _rank_prefix():
    """'rank R of N: ' under torchrun (whose output interleaves the ranks'), else ''."""
    if distributed.launched():
        return f"rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}: "
    return ""


def _lost_rank_hint(error):
    """A collective that failed because a peer is gone says so first (its own error follows)."""
    collective = type(error).__name__.startswith("Dist") or any(
        mark in str(error) for mark in ("gloo/", "NCCL", "Connection closed by peer", "Connection reset by peer"))
    if distributed.launched() and collective:
        return (f"another rank failed, was killed or did not answer within the timeout "
                f"(${distributed.TIMEOUT_ENV}, default {distributed.DEFAULT_TIMEOUT_S:g} s; see its message): "
                f"{str(error).splitlines()[0]}")
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
        print(f"error: {_rank_prefix()}{error}", file=sys.stderr)
        return EXIT_USAGE
    except RunInterrupted as error:
        print(_resume_hint(args, error), file=sys.stderr)
        return error.exit_code
    except (ValueError, TypeError, ImportError, RuntimeError, OSError) as error:
        print(f"error: {_rank_prefix()}{_lost_rank_hint(error)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted (SIGINT)", file=sys.stderr)
        return EXIT_SIGINT
    except _Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        return EXIT_SIGTERM

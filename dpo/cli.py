"""Command line: `python -m dpo {demo,sft,train,eval,generate,frontier}` (also the `minigrad-dpo` script).

    python -m dpo demo                                   # the whole lesson on the twelve triples
    python -m dpo sft --data prefs.jsonl --out runs/a    # SFT warm-up -> runs/a/sft.safetensors
    python -m dpo train --init runs/a/sft.safetensors --data prefs.jsonl --out runs/a
    python -m dpo eval --checkpoint runs/a/checkpoint.safetensors --data prefs.jsonl
    python -m dpo generate --checkpoint runs/a/checkpoint.safetensors --prompt "Compute 2 + 3."
    python -m dpo train --model SmolLM2-135M-Instruct --data prefs.jsonl --out runs/b   # -> runs/b/model/
    python -m dpo frontier --out runs/frontier [--quick]   # reward vs KL against a known reward

Bad input (missing file, malformed row, unknown loss type, CUDA or torch absent,
...) prints one line on stderr and exits non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys

import numpy as np

from .batching import truncation_note
from .chat_template import ChatTemplateError
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import DPOConfig, apply_values, config_options, load_config_file
from .data import PreferenceDataError, load_preferences, make_preferences
from .formats import read_messages
from .hf_tokenizer import TokenizerFolderError
from .lora import LoraError
from .metrics import plot_metrics, read_metrics
from .pretrained import PretrainedError

EXIT_FAILED, EXIT_USAGE = 1, 2


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


def _module_names(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated module names, got {text!r}")
    return names


def _floats(text):
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


# a ConfigOption's kind -> the argparse type that turns the text into a value; bounds are DPOConfig's to check
_PARSE = {int: _integer, float: _float, str: str, "loss_types": _names_list, "floats": _floats, "names": _module_names}


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


def _flag(name):
    return "--" + name.replace("_", "-")


def _dest(path):
    return "config:" + ".".join(path)


# the data length options, which every command that reads --data takes
LENGTH_OPTIONS = {("max_length",): (), ("max_prompt_length",): (), ("max_completion_length",): (),
                  ("truncation_mode",): ()}
# `sft` trains the SFT warm-up: its --learning-rate/--lr and --steps set sft_lr and sft_steps
SFT_OPTIONS = {("batch_size",): (), ("seed",): (), ("sft_lr",): ("learning_rate", "lr"), ("sft_steps",): ("steps",),
               **LENGTH_OPTIONS, ("lora_r",): (), ("lora_alpha",): (), ("lora_dropout",): (),
               ("lora_target_modules",): ()}


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
            metavar = {"loss_types": "NAME[,NAME...]", "floats": "W[,W...]", "names": "NAME[,NAME...]", int: "N",
                       float: "X"}.get(opt.kind, "NAME")
            g.add_argument(*flags, dest=_dest(opt.path), type=_PARSE.get(opt.kind, str), default=None,
                           metavar=metavar, help=opt.help + shown)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m dpo", description=(
        "Direct Preference Optimization on a tiny GPT, on minigrad (NumPy + numba) or PyTorch."))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = commands.add_parser("demo", help="the whole lesson on the twelve triples (SFT, DPO, report)",
                               description="SFT warm-up, frozen reference, DPO, margin table and generations; "
                                           "exits 0 when the loss fell and the margin and accuracy rose.")
    _add_runtime(demo, seed=False)
    _add_data(demo)
    _add_config_options(demo)
    demo.add_argument("--out", metavar="DIR", default=None, help="also write metrics.jsonl, a plot and a checkpoint")

    sft = commands.add_parser("sft", help="supervised warm-up on prompt -> chosen",
                              description="Next-token training on the chosen completions; writes DIR/sft.safetensors.")
    _add_runtime(sft, seed=False)
    _add_data(sft)
    _add_model(sft)
    _add_config_options(sft, only=SFT_OPTIONS)
    sft.add_argument("--out", metavar="DIR", required=True,
                     help="output folder (with --model: the trained model as a Hugging Face folder DIR/model)")

    train = commands.add_parser("train", help="DPO training",
                                description="DPO against a frozen reference (the --init model, or a fresh SFT "
                                            "warm-up); writes checkpoint, reference, metrics.jsonl and a plot to DIR.")
    _add_runtime(train, seed=False)
    _add_data(train)
    start = train.add_mutually_exclusive_group()
    start.add_argument("--init", metavar="CKPT", default=None,
                       help="start policy and reference from this checkpoint (e.g. from `sft`)")
    start.add_argument("--resume", metavar="CKPT", default=None,
                       help="continue an interrupted run from its checkpoint (its config is used; "
                            "reference.safetensors must lie beside it)")
    train.add_argument("--out", metavar="DIR", required=True,
                       help="output folder (with --model: the trained policy as a Hugging Face folder DIR/model)")
    _add_model(train)
    _add_config_options(train)

    evaluate = commands.add_parser("eval", help="reward margins of a trained policy",
                                   description="Per-pair log-probs, rewards and margins against the reference.")
    _add_runtime(evaluate, seed=False)
    _add_data(evaluate)
    evaluate.add_argument("--checkpoint", metavar="CKPT", default=None, help="the policy")
    evaluate.add_argument("--reference", metavar="CKPT", default=None,
                          help="the reference (default: reference.safetensors beside --checkpoint; "
                               "with --model: a Hugging Face folder, required)")
    _add_model(evaluate, instead_of="--checkpoint")
    _add_config_options(evaluate, only=LENGTH_OPTIONS)

    gen = commands.add_parser("generate", help="complete prompts with a trained model",
                              description="Greedy (temperature 0) or sampled completions.")
    _add_runtime(gen)
    gen.add_argument("--checkpoint", metavar="CKPT", default=None)
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
    return parser


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

    backend = get_backend(args.backend, device=args.device, dtype=args.dtype)
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
    (config.model_path), with the checkpoint's weights; LoRA adapters in the checkpoint are applied."""
    from .lora import apply_lora, is_adapter_name
    from .model import TinyGPT
    from .pretrained import load_pretrained

    checkpoint = load_checkpoint(path)
    config = DPOConfig.from_dict(checkpoint.config)
    if config.model_path is not None:
        model = load_pretrained(config.model_path, backend=backend)
    else:
        model = TinyGPT(config.model, backend=backend)
    if any(is_adapter_name(name) for name in checkpoint.weights):
        apply_lora(model, config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_target_modules)
    model.load_weights(checkpoint.weights)
    return model, config, checkpoint


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


def _with_lora(model, config):
    """`model` with LoRA adapters applied when config.lora_r asks for them (as build_models does for TinyGPT)."""
    from .lora import apply_lora

    if config.lora_r:
        apply_lora(model, config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_target_modules,
                   seed=config.seed)
    return model


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
    tokenizer = None
    if config.model_path is not None:
        policy, tokenizer = _pretrained(config.model_path, _backend(args))
        _with_lora(policy, config)
    else:
        policy, _ = build_models(config, backend=_backend(args))
    pairs = _pairs(args, config.max_len, config, tokenizer)
    losses = warmup_pretrain(policy, pairs, tokenizer=tokenizer, steps=config.sft_steps, lr=config.sft_lr,
                             batch_size=config.batch_size, seed=config.seed, max_len=config.max_len, config=config,
                             log=lambda step, loss: print(f"  sft step {step:3d}  loss {loss:.4f}")
                             if step % 10 == 0 or step == config.sft_steps else None)
    if config.lora_r:  # the adapter alone in PEFT's format; the merged model for `train --init` / `--model`
        from .lora import merge_lora, save_adapter

        print(f"wrote the LoRA adapter to {save_adapter(policy, os.path.join(args.out, 'adapter'))}")
        merge_lora(policy)
    if config.model_path is not None:
        path = _save_model(policy, args.out)
    else:
        path = os.path.join(args.out, "sft.safetensors")
        save_checkpoint(path, policy, config, step=len(losses))
    print(f"SFT: loss {losses[0]:.4f} -> {losses[-1]:.4f}; wrote {path}")
    return 0


def cmd_train(args):
    from .evaluation import evaluate_margins, margin_table
    from .lora import has_lora, merge_lora
    from .training import build_models, freeze, train_dpo, warmup_pretrain

    backend = _backend(args)
    if args.resume:  # the interrupted run's config; options given here may extend it (e.g. --epochs)
        config = _config(args, base=DPOConfig.from_dict(load_checkpoint(args.resume).config))
    else:  # a model folder arrives trained: no SFT warm-up unless --sft-steps asks for one
        config = _config(args, base=DPOConfig(sft_steps=0) if getattr(args, MODEL_DEST, None) else None)
    _check_precision(backend, config)
    if config.model_path is not None:
        return _train_pretrained(args, backend, config)
    if args.init:
        init_model, init_config, _ = _model_from_checkpoint(args.init, backend)
        if init_config.model_path is not None:
            raise UsageError(f"train --init {args.init}: a checkpoint of a Hugging Face model; start from its "
                             "folder with --model DIR (e.g. the run's OUT/model)")
        if has_lora(init_model):  # a LoRA run's checkpoint: its adapters become part of the starting weights
            merge_lora(init_model)
        if init_model.config != config.model:
            config = DPOConfig.from_dict({**config.to_dict(), "model": init_model.config.to_dict()})
        policy, reference = build_models(config, backend=backend, weights=init_model.export_weights())
    else:
        policy, reference = build_models(config, backend=backend)
    pairs = _pairs(args, config.max_len, config)
    if args.resume:
        saved = load_checkpoint(os.path.join(os.path.dirname(args.resume), "reference.safetensors"))
        reference.load_weights(saved.weights)
    elif not args.init and config.sft_steps:
        losses = warmup_pretrain(policy, pairs, steps=config.sft_steps, lr=config.sft_lr,
                                 batch_size=config.batch_size, seed=config.seed, max_len=config.max_len,
                                 config=config)
        print(f"SFT warm-up: {len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
        reference.load_weights(policy.export_weights())
    freeze(reference)
    os.makedirs(args.out, exist_ok=True)
    save_checkpoint(os.path.join(args.out, "reference.safetensors"), reference, config)

    result = train_dpo(policy, reference, pairs, config, out_dir=args.out, resume_from=args.resume,
                       on_log=_show_row)
    shown = result.eval_pairs or result.train_pairs
    print(f"margins on the {'held-out' if result.eval_pairs else 'training'} pairs:")
    print(margin_table(evaluate_margins(policy, reference, shown, config)))
    metrics_path = os.path.join(args.out, "metrics.jsonl")
    adapter = f", {os.path.join(args.out, 'adapter')} (PEFT LoRA adapter)" if has_lora(policy) else ""
    print(f"wrote {result.checkpoint}, {metrics_path}{adapter}")
    _write_plot(args.out, read_metrics(metrics_path), config)  # the whole run, also when it was resumed
    return 0


def _show_row(row):
    if "loss" in row:
        print(f"  step {row['step']:4d}  loss {row['loss']:.4f}  margin {row['rewards/margins']:+.4f}  "
              f"accuracy {row['rewards/accuracies']:.2f}  grad_norm {row['grad_norm']:.3f}")
    elif "eval_loss" in row:
        print(f"  eval @ {row['step']:4d}  loss {row['eval_loss']:.4f}  margin {row['eval_rewards/margins']:+.4f}"
              f"  accuracy {row['eval_rewards/accuracies']:.2f}")


def _train_pretrained(args, backend, config):
    """DPO of a Hugging Face folder (config.model_path): the reference is the folder's model
    (or, resuming, the run's reference.safetensors), frozen; an SFT warm-up only when
    --sft-steps asks; the policy is written to OUT/model."""
    from .evaluation import evaluate_margins, margin_table
    from .training import freeze, train_dpo, warmup_pretrain

    if args.init:
        raise UsageError("train: --init takes a TinyGPT checkpoint; a model folder starts from --model DIR, "
                         "and --resume finds the run's folder in its checkpoint")
    from .lora import adapters_off, has_lora, merge_lora

    policy, tokenizer = _pretrained(config.model_path, backend)
    pairs = _pairs(args, config.max_len, config, tokenizer)
    # LoRA: the reference is the policy with its adapters off (no copy); else a frozen copy
    reference = adapters_off(_with_lora(policy, config)) if config.lora_r else policy.to_backend(backend)
    if args.resume:
        saved = load_checkpoint(os.path.join(os.path.dirname(args.resume), "reference.safetensors"))
        reference.load_weights(saved.weights)
    elif config.sft_steps:
        losses = warmup_pretrain(policy, pairs, tokenizer=tokenizer, steps=config.sft_steps, lr=config.sft_lr,
                                 batch_size=config.batch_size, seed=config.seed, max_len=config.max_len,
                                 config=config)
        print(f"SFT warm-up: {len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
        reference.load_weights(policy.export_weights())
    freeze(reference)
    os.makedirs(args.out, exist_ok=True)
    save_checkpoint(os.path.join(args.out, "reference.safetensors"), reference, config)
    result = train_dpo(policy, reference, pairs, config, tokenizer=tokenizer, out_dir=args.out,
                       resume_from=args.resume, on_log=_show_row)
    shown = result.eval_pairs or result.train_pairs
    print(f"margins on the {'held-out' if result.eval_pairs else 'training'} pairs:")
    print(margin_table(evaluate_margins(policy, reference, shown, config, tokenizer=tokenizer)))
    adapter = ""
    if has_lora(policy):  # train_dpo wrote OUT/adapter; OUT/model is the merged model
        adapter = f", {os.path.join(args.out, 'adapter')} (PEFT LoRA adapter)"
        merge_lora(policy)
    path = _save_model(policy, args.out)
    metrics_path = os.path.join(args.out, "metrics.jsonl")
    print(f"wrote {path}{adapter}, {metrics_path}")
    _write_plot(args.out, read_metrics(metrics_path), config)
    return 0


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
    policy, config, _ = _model_from_checkpoint(args.checkpoint, backend)
    reference_path = args.reference or os.path.join(os.path.dirname(args.checkpoint), "reference.safetensors")
    if not os.path.isfile(reference_path):
        raise CheckpointError(f"{reference_path}: no reference checkpoint; pass --reference CKPT")
    reference, _, _ = _model_from_checkpoint(reference_path, backend)
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


def main(argv=None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 failed, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return COMMANDS[args.command](args)
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (PreferenceDataError, CheckpointError, FileNotFoundError, IsADirectoryError, TokenizerFolderError,
            ChatTemplateError, PretrainedError, LoraError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError, ImportError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

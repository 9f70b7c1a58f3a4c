"""DPOConfig: every knob of SFT warm-up and DPO training, its default, its help text and its checks, in one place.

Each field's metadata carries its help line and, where TRL has the option, TRL's
name (`trl`) and older names kept working (`aliases`). The command line
(`dpo.cli`) and config files (`load_config_file`) are built from `config_options()`,
so a default or a bound is written once, here; `__post_init__` is the only check.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import types
import typing

from .losses import F_DIVERGENCES, LOSS_TYPE_NAMES, dpo_loss
from .losses.options import check_training_choice, resolve_options
from .model import GPTConfig

LOSS_OPTION_NAMES = ("gamma", "f_divergence", "f_alpha", "ipo_average", "discopop_tau")
OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")


def option(default=dataclasses.MISSING, *, help, trl=None, aliases=(), default_factory=dataclasses.MISSING):
    """A DPOConfig field with its help line, TRL's name for it (if any) and older names still accepted."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"help": help, "trl": trl, "aliases": tuple(aliases)})


# loss_options entries: help and TRL's name; their defaults are dpo_loss's keyword defaults
LOSS_OPTION_META = {
    "gamma": dict(help="SimPO's target margin γ", trl="simpo_gamma", aliases=("gamma",)),
    "f_divergence": dict(help="the f-divergence of f-DPO, one of: " + ", ".join(F_DIVERGENCES),
                         trl="f_divergence_type", aliases=("f_divergence",)),
    "f_alpha": dict(help="α of alpha_divergence", trl="f_alpha_divergence_coef", aliases=("f_alpha",)),
    "ipo_average": dict(help="IPO on per-token averaged log-ratios (as TRL); off: the paper's summed form",
                        trl=None, aliases=()),
    "discopop_tau": dict(help="DiscoPOP's temperature τ", trl="discopop_tau", aliases=()),
}


@dataclasses.dataclass
class DPOConfig:
    """Defaults train the demo (twelve triples, default TinyGPT) in a few seconds on a CPU.

    Each field's help is in its metadata (`python -m dpo train --help` lists them all).
    """

    model: GPTConfig = option(default_factory=GPTConfig, help="model size (GPTConfig)")
    beta: float = option(0.1, help="β, the strength of the tie to the reference", trl="beta")
    loss_type: str | list = option("sigmoid", trl="loss_type", help="one or more of (comma-separated; "
                                   "sigmoid,sft = RPO): " + ", ".join(LOSS_TYPE_NAMES))
    loss_weights: list | None = option(None, trl="loss_weights", help="one weight per loss type (default all 1)")
    label_smoothing: float = option(0.0, trl="label_smoothing", help="ε for cDPO / robust / exo_pair")
    loss_options: dict = option(default_factory=dict, help="options of dpo_loss: " + ", ".join(LOSS_OPTION_NAMES))
    lr: float = option(1e-4, trl="learning_rate", aliases=("lr",), help="DPO learning rate")
    optim: str = option("adamw", trl="optim", help="the optimizer: " + ", ".join(OPTIMIZERS)
                        + " (torch's rules and defaults; the original DPO code used rmsprop)")
    weight_decay: float = option(0.0, trl="weight_decay",
                                 help="weight decay (decoupled for adamw, added to the gradient otherwise)")
    lr_scheduler_type: str = option("constant_with_warmup", trl="lr_scheduler_type",
                                    help="learning-rate schedule, as transformers': " + ", ".join(LR_SCHEDULERS))
    warmup_steps: int = option(2, trl="warmup_steps", help="linear learning-rate warm-up updates")
    warmup_ratio: float = option(0.0, trl="warmup_ratio",
                                 help="if > 0: warm up over ceil(warmup_ratio × updates) instead of warmup_steps")
    max_grad_norm: float = option(1.0, trl="max_grad_norm", help="clip the gradient's global norm at this")
    gradient_accumulation_steps: int = option(1, trl="gradient_accumulation_steps",
                                              help="micro-batches of batch_size pairs per update")
    bf16: bool = option(False, trl="bf16", help="bfloat16 autocast of the forward passes (torch backend only)")
    ld_alpha: float | None = option(None, trl="ld_alpha",
                                    help="LD-DPO: weight in [0, 1] of the log-probs of the longer completion's "
                                         "tokens past the shorter one's length")
    use_weighting: bool = option(False, trl="use_weighting",
                                 help="WPO: weight each pair's loss by the policy's length-normalised probabilities")
    sync_ref_model: bool = option(False, trl="sync_ref_model",
                                  help="TR-DPO: mix the policy into the reference every ref_model_sync_steps updates")
    ref_model_mixup_alpha: float = option(0.6, trl="ref_model_mixup_alpha",
                                          help="TR-DPO: reference <- α·policy + (1-α)·reference")
    ref_model_sync_steps: int = option(512, trl="ref_model_sync_steps", help="TR-DPO: updates between syncs")
    batch_size: int = option(12, trl="per_device_train_batch_size", aliases=("batch_size",),
                             help="pairs per micro-batch (an update takes gradient_accumulation_steps of them)")
    epochs: int = option(20, trl="num_train_epochs", aliases=("epochs",), help="passes over the training pairs")
    max_steps: int | None = option(None, trl="max_steps", help="stop after this many updates (default: epochs)")
    seed: int = option(0, trl="seed", help="seeds initialisation, shuffling, the split and sampling")
    eval_fraction: float = option(0.0, help="share of pairs held out for evaluation, in [0, 1)")
    log_every: int = option(1, trl="logging_steps", aliases=("log_every",), help="steps between metric rows")
    checkpoint_every: int = option(0, trl="save_steps", aliases=("checkpoint_every",),
                                   help="steps between checkpoints (0: only at the end and on an interrupt)")
    sft_steps: int = option(60, help="SFT warm-up steps on prompt + chosen before DPO (when no --init is given)")
    sft_lr: float = option(3e-3, help="SFT warm-up learning rate")
    save_total_limit: int | None = option(None, trl="save_total_limit",
                                          help="keep at most this many checkpoint-<step> folders, deleting the "
                                               "oldest (default: all)")
    divergence_logp_factor: float = option(10.0, help="stop when the policy's mean log-prob per chosen token falls "
                                                      "below this × -log(vocabulary size) (0: never)")
    divergence_grad_factor: float = option(1000.0, help="stop when the gradient norm exceeds this × the median of "
                                                        "the last 20 steps' (0: never)")
    divergence_sft_factor: float = option(10.0, help="stop the SFT warm-up when its loss exceeds this × its first "
                                                     "value (0: never)")
    max_length: int | None = option(None, trl="max_length",
                                    help="cut each prompt + completion row to this many tokens (see dpo.tokenize)")
    max_prompt_length: int | None = option(None, trl="max_prompt_length",
                                           help="keep the end of each prompt, at most this many tokens")
    max_completion_length: int | None = option(None, trl="max_completion_length",
                                               help="keep the start of each completion, at most this many tokens")
    truncation_mode: str = option("keep_start", trl="truncation_mode",
                                  help="which end of a row max_length keeps: keep_start or keep_end")
    precompute_ref_log_probs: bool = option(False, trl="precompute_ref_log_probs",
                                            help="store the reference's log-probs next to the run and reuse them "
                                                 "(dpo.ref_cache)")
    model_path: str | None = option(None, trl="model_name_or_path",
                                    help="a Hugging Face model folder (GPT-2, Llama, Qwen2; dpo.load_pretrained) "
                                         "trained instead of a TinyGPT of the model size; max_len is then the "
                                         "folder's context length")

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = GPTConfig(**self.model)

        def positive(name, integer=False, allow_zero=False):
            value = getattr(self, name)
            kind = int if integer else (int, float)
            ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (value == 0 and not allow_zero):
                need = "a non-negative" if allow_zero else "a positive"
                raise ValueError(f"DPOConfig.{name} must be {need} {'int' if integer else 'number'}, got {value!r}")

        positive("lr")
        positive("sft_lr")
        positive("max_grad_norm")
        positive("weight_decay", allow_zero=True)
        for name in ("batch_size", "epochs", "log_every"):
            positive(name, integer=True)
        for name in ("warmup_steps", "checkpoint_every", "sft_steps", "seed"):
            positive(name, integer=True, allow_zero=True)
        if self.max_steps is not None:
            positive("max_steps", integer=True)
        if self.save_total_limit is not None:
            positive("save_total_limit", integer=True)
        for name in ("divergence_logp_factor", "divergence_grad_factor", "divergence_sft_factor"):
            positive(name, allow_zero=True)
        for name in ("gradient_accumulation_steps", "ref_model_sync_steps"):
            positive(name, integer=True)
        for name, choices in (("optim", OPTIMIZERS), ("lr_scheduler_type", LR_SCHEDULERS)):
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"DPOConfig.{name}: unknown {value!r}; choose from: {', '.join(choices)}")
        for name in ("bf16", "use_weighting", "sync_ref_model"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"DPOConfig.{name} must be true or false, got {getattr(self, name)!r}")
        for name, value in (("warmup_ratio", self.warmup_ratio), ("ref_model_mixup_alpha", self.ref_model_mixup_alpha),
                            ("ld_alpha", 0.0 if self.ld_alpha is None else self.ld_alpha)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"DPOConfig.{name} must be a number in [0, 1], got {value!r}")
        if self.sync_ref_model and self.precompute_ref_log_probs:
            raise ValueError("DPOConfig.sync_ref_model: TR-DPO moves the reference, so its log-probs cannot be "
                             "precomputed; drop precompute_ref_log_probs (TRL refuses the combination too)")
        if self.use_weighting and {"aot", "aot_unpaired"} & set(_loss_names(self.loss_type)):
            raise ValueError("DPOConfig.use_weighting: WPO weights are per pair, but aot and aot_unpaired sort the "
                             "batch (losses[k] is a quantile, not pair k); TRL refuses the combination too")
        for name in ("max_length", "max_prompt_length", "max_completion_length"):
            if getattr(self, name) is not None:
                positive(name, integer=True)
        # a model folder's context is checked where the folder is read (collate), not here
        if (self.max_length is not None and self.model_path is None and isinstance(self.model, GPTConfig)
                and self.max_length > self.model.max_len):
            raise ValueError(f"DPOConfig.max_length {self.max_length} exceeds the model's context "
                             f"(model.max_len {self.model.max_len})")
        if self.truncation_mode not in ("keep_start", "keep_end"):
            raise ValueError(f"DPOConfig.truncation_mode must be 'keep_start' or 'keep_end', "
                             f"got {self.truncation_mode!r}")
        if self.model_path is not None and not isinstance(self.model_path, str):
            raise ValueError(f"DPOConfig.model_path must be a folder path or None, got {self.model_path!r}")
        if not isinstance(self.precompute_ref_log_probs, bool):
            raise ValueError(f"DPOConfig.precompute_ref_log_probs must be True or False, got "
                             f"{self.precompute_ref_log_probs!r}")
        if not isinstance(self.eval_fraction, (int, float)) or not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError(f"DPOConfig.eval_fraction must be in [0, 1), got {self.eval_fraction!r}")
        unknown = sorted(set(self.loss_options) - set(LOSS_OPTION_NAMES))
        if unknown:
            raise ValueError(
                f"DPOConfig.loss_options: unknown option(s) {', '.join(unknown)}; known: {', '.join(LOSS_OPTION_NAMES)}"
            )
        self._check_loss_choice()

    def _check_loss_choice(self):
        """β, label smoothing, the loss type(s), weights and options, checked by the same code as
        `dpo_loss` checks them, so a mistake is reported when the config is made, not after the SFT warm-up."""
        options = {name: self.loss_options.get(name, LOSS_OPTION_DEFAULTS[name]) for name in LOSS_OPTION_NAMES}
        try:
            resolve_options("DPOConfig", self.loss_type, self.loss_weights, options["f_divergence"],
                            options["f_alpha"], self.beta, self.label_smoothing, options["gamma"],
                            options["discopop_tau"], options["ipo_average"])
            check_training_choice("DPOConfig", self.loss_type, self.loss_weights, self.label_smoothing)
        except TypeError as error:  # one exception type for every bad value of a config
            raise ValueError(str(error)) from None

    def trl_differences(self) -> list:
        """One line for each setting here that trains differently under TRL 1.16's DPOTrainer
        (docs/loss-variants.md, column "vs TRL 1.16"), for a user bringing a TRL config."""
        names = _loss_names(self.loss_type)
        notes = []
        if "sigmoid" in names and self.label_smoothing > 0:
            notes.append(f"label_smoothing {self.label_smoothing:g} makes sigmoid conservative DPO (cDPO) here; "
                         "TRL 1.16's sigmoid ignores label_smoothing")
        if "bco_pair" in names:
            notes.append("bco_pair keeps a running reward shift here; TRL 1.16's bco_pair has none")
        if "orpo" in names:
            notes.append("orpo's NLL covers the chosen completion here; TRL's ORPOTrainer adds the prompt tokens")
        return notes

    @property
    def max_len(self) -> int:
        if self.model_path is not None:
            from .pretrained import context_length

            return context_length(self.model_path)
        return self.model.max_len

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> DPOConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"DPOConfig: unknown field(s) {', '.join(unknown)}")
        return cls(**values)


def _loss_names(loss_type) -> list:
    return [loss_type] if isinstance(loss_type, str) else list(loss_type)


LOSS_OPTION_DEFAULTS = {name: inspect.signature(dpo_loss).parameters[name].default for name in LOSS_OPTION_NAMES}


# ---- the option table the CLI and config files are built from ------------------------------------
@dataclasses.dataclass(frozen=True)
class ConfigOption:
    """One settable value: `path` into DPOConfig.to_dict() (("lr",), ("model", "hidden"),
    ("loss_options", "gamma")), its names (the first is the CLI's long option, TRL's name
    where TRL has one), its type (int, float, bool, str, "loss_types", "floats"), default and help."""

    path: tuple
    names: tuple
    kind: object
    default: object
    help: str

    @property
    def field(self):
        return self.path[-1]


def _kind(annotation):
    """The value kind of a field's type annotation (Optional stripped)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if set(args) == {str, list}:
            return "loss_types"
        annotation = args[0] if len(args) == 1 else annotation
    if annotation is list or typing.get_origin(annotation) is list:
        return "floats"
    if annotation in (int, float, bool, str):
        return annotation
    return str


def _names(field_name, metadata):
    names = [metadata.get("trl") or field_name, field_name, *metadata.get("aliases", ())]
    return tuple(dict.fromkeys(names))


def config_options() -> list:
    """Every value a run can set, in DPOConfig's field order; nested GPTConfig and loss_options expanded."""
    hints = typing.get_type_hints(DPOConfig)
    out = []
    for field in dataclasses.fields(DPOConfig):
        meta = dict(field.metadata)
        if field.name == "model":
            model_hints = typing.get_type_hints(GPTConfig)
            for sub in dataclasses.fields(GPTConfig):
                out.append(ConfigOption(("model", sub.name), _names(sub.name, sub.metadata),
                                        _kind(model_hints[sub.name]), sub.default,
                                        sub.metadata.get("help", f"GPTConfig.{sub.name}")))
        elif field.name == "loss_options":
            for name in LOSS_OPTION_NAMES:
                default = LOSS_OPTION_DEFAULTS[name]
                out.append(ConfigOption(("loss_options", name), _names(name, LOSS_OPTION_META[name]),
                                        type(default), default, LOSS_OPTION_META[name]["help"]))
        else:
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            out.append(ConfigOption((field.name,), _names(field.name, meta), _kind(hints[field.name]), default,
                                    meta.get("help", f"DPOConfig.{field.name}")))
    return out


def apply_values(base: dict, values: dict) -> dict:
    """`base` (a DPOConfig.to_dict()) with `values` ({ConfigOption.path: value}) put in."""
    merged = json.loads(json.dumps(base))
    for path, value in values.items():
        target = merged
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return merged


def load_config_file(path: str) -> dict:
    """A JSON (or, with PyYAML installed, YAML) file of options -> {ConfigOption.path: value}.

    Keys are any name of an option (TRL's, the field's, an alias), or DPOConfig.to_dict()'s
    own nesting ("model": {...}, "loss_options": {...}), so a checkpoint's stored config
    works too. Unknown keys are one ValueError naming them and the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such config file")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{path}: YAML config files need PyYAML (pip install pyyaml); "
                             "or write the file as JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML: {str(error).splitlines()[0]}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of option names to values, got {type(data).__name__}")
    by_name = {}
    for opt in config_options():
        for name in opt.names:
            by_name.setdefault(name, opt.path)
    flat, unknown = {}, []
    for key, value in data.items():
        if key in ("model", "loss_options") and isinstance(value, dict):
            for sub_key, sub_value in value.items():
                if (key, sub_key) in by_name.values():
                    flat[(key, sub_key)] = sub_value
                else:
                    unknown.append(f"{key}.{sub_key}")
        elif key in by_name:
            flat[by_name[key]] = value
        else:
            unknown.append(str(key))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)} (see `python -m dpo train --help` "
                         "for the option names)")
    return flat

"""DPOConfig: every knob of SFT warm-up and DPO training, validated in one place."""

from __future__ import annotations

import dataclasses
import inspect
import math

from .losses import dpo_loss
from .losses.options import check_training_choice, resolve_options
from .model import GPTConfig

LOSS_OPTION_NAMES = ("gamma", "f_divergence", "f_alpha", "ipo_average", "discopop_tau")


@dataclasses.dataclass
class DPOConfig:
    """Defaults train the demo (twelve triples, default TinyGPT) in a few seconds on a CPU.

    Loss: beta, loss_type (a name or a list, combined with loss_weights),
    label_smoothing, and loss_options (gamma, f_divergence, f_alpha, ipo_average,
    discopop_tau) passed to `dpo_loss`.
    Optimisation: AdamW with lr, weight_decay, linear warm-up over warmup_steps
    then constant, gradient-norm clipping at max_grad_norm; batch_size pairs per
    step; epochs over the train split, or max_steps if set.
    Data: max_len tokens per row; eval_fraction held out (seeded).
    Lengths (TRL's names; all off by default, see dpo.tokenize and dpo.batching): max_length
    cuts each prompt + completion row (truncation_mode keep_start / keep_end);
    max_prompt_length keeps the end of the prompt; max_completion_length the start of each completion.
    precompute_ref_log_probs: the reference's log-probs are stored next to the run and reused (dpo.ref_cache).
    SFT warm-up: sft_steps of next-token training on prompt + chosen at sft_lr.
    Runs: checkpoint_every steps a checkpoint-<step> folder, at most save_total_limit
    of them kept (None: all). Divergence (`dpo/divergence.py`; 0 turns a test off):
    stop when the policy's mean log-prob per chosen token falls below
    divergence_logp_factor * -log(vocab size), when the gradient norm exceeds
    divergence_grad_factor * the median of the recent steps', or when the SFT loss
    exceeds divergence_sft_factor * its first value.
    """

    model: GPTConfig = dataclasses.field(default_factory=GPTConfig)
    beta: float = 0.1
    loss_type: str | list = "sigmoid"
    loss_weights: list | None = None
    label_smoothing: float = 0.0
    loss_options: dict = dataclasses.field(default_factory=dict)
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 2
    max_grad_norm: float = 1.0
    batch_size: int = 12
    epochs: int = 20
    max_steps: int | None = None
    seed: int = 0
    eval_fraction: float = 0.0
    log_every: int = 1
    checkpoint_every: int = 0
    sft_steps: int = 60
    sft_lr: float = 3e-3
    save_total_limit: int | None = None
    divergence_logp_factor: float = 10.0
    divergence_grad_factor: float = 1000.0
    divergence_sft_factor: float = 10.0
    max_length: int | None = None
    max_prompt_length: int | None = None
    max_completion_length: int | None = None
    truncation_mode: str = "keep_start"
    precompute_ref_log_probs: bool = False

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

        positive("beta")
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
        for name in ("max_length", "max_prompt_length", "max_completion_length"):
            if getattr(self, name) is not None:
                positive(name, integer=True)
        if self.max_length is not None and isinstance(self.model, GPTConfig) and self.max_length > self.model.max_len:
            raise ValueError(f"DPOConfig.max_length {self.max_length} exceeds the model's context "
                             f"(model.max_len {self.model.max_len})")
        if self.truncation_mode not in ("keep_start", "keep_end"):
            raise ValueError(f"DPOConfig.truncation_mode must be 'keep_start' or 'keep_end', "
                             f"got {self.truncation_mode!r}")
        if not isinstance(self.precompute_ref_log_probs, bool):
            raise ValueError(f"DPOConfig.precompute_ref_log_probs must be True or False, got "
                             f"{self.precompute_ref_log_probs!r}")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError(f"DPOConfig.eval_fraction must be in [0, 1), got {self.eval_fraction!r}")
        unknown = sorted(set(self.loss_options) - set(LOSS_OPTION_NAMES))
        if unknown:
            raise ValueError(
                f"DPOConfig.loss_options: unknown option(s) {', '.join(unknown)}; known: {', '.join(LOSS_OPTION_NAMES)}"
            )
        self._check_loss_choice()

    def _check_loss_choice(self):
        """The loss type(s), weights and options checked as `dpo_loss` will check them, so a
        mistake is reported when the config is made, not after the SFT warm-up."""
        defaults = inspect.signature(dpo_loss).parameters
        options = {name: self.loss_options.get(name, defaults[name].default) for name in LOSS_OPTION_NAMES}
        resolve_options("DPOConfig", self.loss_type, self.loss_weights, options["f_divergence"], options["f_alpha"],
                        self.beta, self.label_smoothing, options["gamma"], options["discopop_tau"],
                        options["ipo_average"])
        check_training_choice("DPOConfig", self.loss_type, self.loss_weights, self.label_smoothing)

    @property
    def max_len(self) -> int:
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

"""SFT warm-up and DPO training, written once against the backend surface.

    policy, reference = build_models(config, backend="numpy")
    warmup_pretrain(policy, pairs, steps=60)        # SFT on prompt -> chosen
    reference.load_weights(policy.export_weights())  # the frozen reference = the warmed-up policy
    result = train_dpo(policy, reference, pairs, config)

The reference is frozen (no parameter requires grad, eval mode) and its
log-probs are computed once per example and cached; only the policy trains.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import signal
from typing import NamedTuple

import numpy as np

from . import interrupts
from . import ref_cache as ref_logps_cache
from .batching import collate, count_truncated, iterate_batches, split_train_eval
from .checkpoint import (
    architecture_difference,
    architecture_of,
    checkpoint_name,
    load_checkpoint,
    rotate_checkpoints,
    save_checkpoint,
    weights_fingerprint,
)
from .config import DPOConfig
from .distributed import SINGLE
from .divergence import DivergenceMonitor, TrainingDiverged
from .logprobs import sequence_log_prob, target_logprobs
from .lora import adapters_off, apply_lora, has_lora, save_adapter, trainable_parameters
from .losses import RunningMean, dpo_loss
from .metrics import MetricsLog
from .model import GPTConfig, TinyGPT
from .progress import Progress
from .tokenizer import InstructionTokenizer
from .train_options import (
    make_optimizer,
    make_scheduler,
    micro_batches,
    mix_reference,
    policy_forward,
    precision,
    reference_forward_logps,
)


def freeze(model):
    """Make `model` a frozen reference: no parameter requires grad, eval mode."""
    model.requires_grad_(False)
    model.eval()
    return model


def build_models(config: DPOConfig | GPTConfig | None = None, backend=None, seed: int | None = None,
                 weights: dict | None = None):
    """(policy, reference): two TinyGPTs with identical weights on `backend`
    (default numpy); the reference frozen. Weights come from `weights` if given,
    else from the NumPy initialisation with `seed` (default: the config's seed).
    With config.lora_r > 0 the policy gets LoRA adapters (only they train) and the
    reference is the same model with its adapters off (`dpo.lora.adapters_off`):
    one copy of the weights."""
    config = config or DPOConfig()
    model_config = config.model if isinstance(config, DPOConfig) else config
    if seed is None:
        seed = config.seed if isinstance(config, DPOConfig) else 0
    policy = TinyGPT(model_config, seed=seed, backend=backend)
    if weights is not None:
        policy.load_weights(weights)
    if isinstance(config, DPOConfig) and config.lora_r:
        apply_lora(policy, config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_target_modules, seed)
        return policy, adapters_off(policy)
    reference = TinyGPT(model_config, seed=seed, backend=backend)
    reference.load_weights(policy.export_weights())
    return policy, freeze(reference)


def _masked_nll(model, batch, backend):
    """Mean next-token NLL over the completion tokens of the chosen rows (SFT loss)."""
    b = batch.batch_size  # the head runs at the counted positions only
    picked, _, (rows, _) = target_logprobs(model, batch.input_ids[:b], batch.attention_mask[:b], batch.targets[:b],
                                           backend)
    return -picked.sum() / max(len(rows), 1)


def warmup_pretrain(model, pairs, tokenizer=None, steps: int | None = None, lr: float | None = None,
                    batch_size: int | None = None, seed: int | None = None, max_len: int | None = None,
                    max_grad_norm: float | None = None, log=None, config=None,
                    divergence_factor: float | None = None) -> list:
    """Supervised fine-tuning on prompt -> chosen (next-token NLL on the chosen
    completion tokens), AdamW at `lr` for `steps` steps. Returns the losses.
    `log(step, loss)` is called every step when given; `config` (default DPOConfig())
    supplies the length settings and every argument left None: steps = sft_steps,
    lr = sft_lr, batch_size, seed, max_grad_norm, divergence_factor = divergence_sft_factor.
    Raises TrainingDiverged when the loss exceeds `divergence_factor` times its first value
    (0: never), and interrupts.RunInterrupted after the step during which a signal arrived
    (see `interrupts.saving_on_interrupt`)."""
    defaults = config or DPOConfig()
    steps = defaults.sft_steps if steps is None else steps
    lr = defaults.sft_lr if lr is None else lr
    batch_size = defaults.batch_size if batch_size is None else batch_size
    seed = defaults.seed if seed is None else seed
    max_grad_norm = defaults.max_grad_norm if max_grad_norm is None else max_grad_norm
    divergence_factor = defaults.divergence_sft_factor if divergence_factor is None else divergence_factor
    if steps < 0:
        raise ValueError(f"warmup_pretrain: steps must be >= 0, got {steps}")
    backend = type(model).backend
    tokenizer = tokenizer or InstructionTokenizer()
    max_len = max_len or model.config.max_len
    pairs = list(pairs)
    if not pairs:
        raise ValueError("warmup_pretrain: no pairs to train on")
    if steps == 0:
        return []
    model.train()
    optimizer = backend.optimizer("adamw", trainable_parameters(model), lr=lr, weight_decay=0.0)
    monitor = DivergenceMonitor.for_sft(divergence_factor)
    losses, step, epoch = [], 0, 0
    with Progress(steps, "sft") as bar:
        while step < steps:
            for chunk in iterate_batches(pairs, batch_size, seed=seed, epoch=epoch):
                loss = _masked_nll(model, collate(chunk, tokenizer, max_len, config), backend)
                value = float(loss.item())
                if not math.isfinite(value):
                    raise TrainingDiverged(f"SFT warm-up step {step + 1}: the loss is {value}")
                optimizer.zero_grad()
                loss.backward()
                backend.clip_grad_norm_(trainable_parameters(model), max_grad_norm)
                optimizer.step()
                losses.append(value)
                step += 1
                if log is not None:
                    bar.clear()
                    log(step, value)
                bar.update(loss=value)
                monitor.sft(step, value)
                if interrupts.requested():
                    raise interrupts.RunInterrupted(interrupts.requested(), step, phase="SFT")
                if step >= steps:
                    break
            epoch += 1
    return losses


def reference_log_probs(reference, pairs, tokenizer=None, max_len=None, batch_size=32, config=None) -> np.ndarray:
    """(n, 2) float64 array: the reference's log-prob of each pair's chosen and
    rejected completion, computed once (no graph) to be cached for training.
    With a `config` whose ld_alpha is set, LD-weighted as the policy's (LD-DPO)."""
    backend = type(reference).backend
    tokenizer = tokenizer or InstructionTokenizer()
    max_len = max_len or reference.config.max_len
    pairs = list(pairs)
    out = np.zeros((len(pairs), 2))
    with backend.no_grad():
        for start in range(0, len(pairs), batch_size):
            batch = collate(pairs[start:start + batch_size], tokenizer, max_len, config)
            if config is not None and (config.ld_alpha is not None or config.bf16):
                logps = reference_forward_logps(reference, batch, config)
            else:
                logps = backend.to_numpy(sequence_log_prob(reference, batch).logps)
            chosen, rejected = batch.chosen_rejected(logps)
            out[start:start + len(chosen), 0] = chosen
            out[start:start + len(chosen), 1] = rejected
    return out


def _loss_kwargs(config: DPOConfig, backend, batch, bco_state):
    chosen_lengths, rejected_lengths = batch.chosen_rejected(batch.completion_lengths)
    return dict(beta=config.beta, loss_type=config.loss_type, label_smoothing=config.label_smoothing,
                loss_weights=config.loss_weights, chosen_lengths=chosen_lengths,
                rejected_lengths=rejected_lengths, bco_state=bco_state, backend=backend, **config.loss_options)


def preference_metrics(output, policy_chosen, policy_rejected, backend, prefix="") -> dict:
    """TRL-named batch means from a DPOLossOutput and the policy log-probs."""
    chosen = backend.to_numpy(output.chosen_rewards).astype(np.float64)
    rejected = backend.to_numpy(output.rejected_rewards).astype(np.float64)
    return {
        f"{prefix}loss": float(np.mean(backend.to_numpy(output.losses.detach()))),
        f"{prefix}rewards/chosen": float(chosen.mean()),
        f"{prefix}rewards/rejected": float(rejected.mean()),
        f"{prefix}rewards/margins": float((chosen - rejected).mean()),
        f"{prefix}rewards/accuracies": float((chosen > rejected).mean()),
        f"{prefix}logps/chosen": float(backend.to_numpy(policy_chosen.detach()).mean()),
        f"{prefix}logps/rejected": float(backend.to_numpy(policy_rejected.detach()).mean()),
    }


class BatchLoss(NamedTuple):
    """What `dpo_loss_on_batch` computed: the mean loss (a differentiable scalar), the
    per-example DPOLossOutput, and the policy's chosen / rejected log-probs (B,)."""

    loss: object
    output: object
    policy_chosen: object
    policy_rejected: object


class MeasuredBatchLoss(BatchLoss):
    """A BatchLoss (it unpacks as one) that also carries `extra`, the metrics besides the
    rewards: logits/chosen, logits/rejected, kl_per_token, and for a list of loss types each
    part's unweighted mean loss, loss/<type>, with nll_loss = loss/sft."""

    def __new__(cls, loss, output, policy_chosen, policy_rejected, extra):
        self = super().__new__(cls, loss, output, policy_chosen, policy_rejected)
        self.extra = extra
        return self


def _part_losses(config, backend, batch, pc, pr, ref, bco_state) -> dict:
    """Each listed loss type's unweighted batch-mean loss, for the metrics (no graph)."""
    names = [config.loss_type] if isinstance(config.loss_type, str) else list(config.loss_type)
    out = {}
    if len(names) > 1 or names == ["sft"]:
        kwargs = _loss_kwargs(config, backend, batch, None)
        with backend.no_grad():
            for name in names:
                part = dpo_loss(pc.detach(), pr.detach(), ref[:, 0], ref[:, 1],
                                **{**kwargs, "loss_type": name, "loss_weights": None,
                                   "bco_state": copy.deepcopy(bco_state) if name == "bco_pair" else None})
                out[f"loss/{name}"] = float(np.mean(backend.to_numpy(part.losses)))
    if "loss/sft" in out:
        out["nll_loss"] = out["loss/sft"]
    return out


def dpo_loss_on_batch(policy, batch, ref_logps, config: DPOConfig, bco_state=None,
                      step: int = 0) -> MeasuredBatchLoss:
    """The DPO loss of `policy` on a collated batch against cached reference log-probs
    `ref_logps` ((B, 2) array: chosen, rejected): one policy forward of the 2B rows,
    then `dpo_loss`; mean over the B pairs. Nothing is stepped, so gradients can be
    taken (`.loss.backward()`) and compared. Raises TrainingDiverged naming `step`
    when the policy's log-probs or the loss are not finite."""
    backend = type(policy).backend
    forward = policy_forward(policy, batch, config)
    logps = forward.logps
    values = backend.to_numpy(logps)
    if not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise TrainingDiverged(f"DPO step {step}: the policy log-prob of row {bad} is {values[bad]}; "
                               "stopped before updating the weights")
    policy_chosen, policy_rejected = batch.chosen_rejected(logps)
    ref = backend.tensor(np.asarray(ref_logps, dtype=np.float64))
    state_before = copy.deepcopy(bco_state)
    output = dpo_loss(policy_chosen, policy_rejected, ref[:, 0], ref[:, 1],
                      **_loss_kwargs(config, backend, batch, bco_state))
    per_example = output.losses
    if forward.wpo_weights is not None:  # WPO: each pair's loss times w_c·w_r (a constant)
        per_example = per_example * backend.tensor(forward.wpo_weights)
    loss = per_example.mean()
    value = float(loss.item())
    if not math.isfinite(value):
        raise TrainingDiverged(f"DPO step {step}: the loss is {value}; stopped before updating the weights")
    lengths = np.maximum(batch.completion_lengths, 1)
    ref_rows = np.concatenate([np.asarray(ref_logps, dtype=np.float64)[:, 0], np.asarray(ref_logps)[:, 1]])
    extra = {"logits/chosen": forward.logits_chosen, "logits/rejected": forward.logits_rejected,
             "kl_per_token": float(np.mean((np.asarray(values, dtype=np.float64) - ref_rows) / lengths)),
             **_part_losses(config, backend, batch, policy_chosen, policy_rejected, ref, state_before)}
    return MeasuredBatchLoss(loss, output, policy_chosen, policy_rejected, extra)


def dpo_step(policy, batch, ref_logps, optimizer, config: DPOConfig, scheduler=None, bco_state=None,
             step: int = 0, dist=None, shares=None) -> dict:
    """One DPO update: `dpo_loss_on_batch`, backward, gradient clipping at
    config.max_grad_norm, optimizer (and schedule) step. `batch` may be a list of
    micro-batches (gradient accumulation) with `ref_logps` the matching list: each
    micro-batch's mean loss is weighted by its share of the pairs, so the update equals
    one batch of all of them. Returns the batch metrics (TRL's names: loss, rewards/*,
    logps/*, logits/*, grad_norm, learning_rate the update used, and per-part losses).
    Raises TrainingDiverged, before touching the weights, on non-finite log-probs,
    loss or gradient norm.

    Data-parallel (`dist` a dpo.distributed.Distributed, `policy` its wrapped model): `batch`
    is this rank's shard of each global micro-batch and `shares` each shard's fraction of the
    update's pairs over all ranks (0 for a placeholder shard on a rank with no pairs); the
    gradient and the metrics are then those of the whole update."""
    dist = dist or SINGLE
    backend = type(policy).backend
    batches = batch if isinstance(batch, list) else [batch]
    refs = ref_logps if isinstance(batch, list) else [ref_logps]
    if shares is None:
        total = sum(b.batch_size for b in batches)
        shares = [b.batch_size / total for b in batches]
    optimizer.zero_grad()
    parts = []
    for index, (micro, ref, share) in enumerate(zip(batches, refs, shares)):
        # DDP all-reduces the gradients in the last micro-step's backward only
        with dist.no_sync(policy) if index < len(batches) - 1 else contextlib.nullcontext():
            result = dpo_loss_on_batch(policy, micro, ref, config, bco_state, step)
            if dist.active:  # DDP averages over the ranks: world_size · share makes it the update's mean
                (result.loss * (share * dist.world_size)).backward()
            else:
                (result.loss * share if len(batches) > 1 else result.loss).backward()
        metrics = preference_metrics(result.output, result.policy_chosen, result.policy_rejected, backend)
        metrics.update(result.extra, loss=float(result.loss.item()))
        parts.append((share, metrics))
    grad_norm = backend.clip_grad_norm_(trainable_parameters(policy), config.max_grad_norm)
    if not math.isfinite(grad_norm):
        raise TrainingDiverged(f"DPO step {step}: the gradient norm is {grad_norm}; stopped before updating")
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    metrics = dist.sum_metrics({key: sum(share * m[key] for share, m in parts) for key in parts[0][1]})
    metrics.update(grad_norm=grad_norm, learning_rate=lr)
    return metrics


@dataclasses.dataclass
class TrainResult:
    """history: every logged metrics row; steps: updates done; train/eval: the split used;
    checkpoint: the last checkpoint written (or None); truncated: how many train and
    eval pairs had their prompt cut to fit max_len; start_step: the step resumed from (0
    for a new run); total_steps: where the run ends."""

    history: list
    steps: int
    train_pairs: list
    eval_pairs: list
    checkpoint: str | None = None
    truncated: int = 0
    start_step: int = 0
    total_steps: int = 0

    def rows(self, key):
        return [row[key] for row in self.history if key in row]


def evaluate_pairs(policy, reference, pairs, config: DPOConfig, tokenizer=None, batch_size=32, prefix="eval_",
                   ref_logps=None, dist=None):
    """Pair-weighted mean metrics of the policy against the reference on `pairs`
    (no update, no graph). `ref_logps`: the reference's (n, 2) log-probs of `pairs`
    when already cached; else computed here. With a data-parallel `dist`, each rank
    evaluates its contiguous share of `pairs` and the sums are all-reduced; under FSDP every
    rank evaluates all of them (each forward is a collective, so every rank runs the same ones)."""
    dist = dist or SINGLE
    backend = type(policy).backend
    tokenizer = tokenizer or InstructionTokenizer()
    pairs = list(pairs)
    if not pairs:
        raise ValueError("evaluate_pairs: no pairs to evaluate")
    if ref_logps is None:
        ref_logps = _reference_log_probs(reference, pairs, tokenizer, config, dist)
    if dist.active and not dist.fsdp:
        start, stop = dist.bounds(len(pairs))
        mine = _evaluate_sums(policy, pairs[start:stop], np.asarray(ref_logps)[start:stop], config, tokenizer,
                              batch_size, prefix, backend)
        keys = sorted(_evaluate_sums(policy, pairs[:1], np.asarray(ref_logps)[:1], config, tokenizer, batch_size,
                                     prefix, backend)) if not mine else sorted(mine)
        totals = dist.sum([mine.get(k, 0.0) for k in keys])
        return {k: float(v) / len(pairs) for k, v in zip(keys, totals)}
    sums = _evaluate_sums(policy, pairs, ref_logps, config, tokenizer, batch_size, prefix, backend)
    return {k: v / len(pairs) for k, v in sums.items()}


def _evaluate_sums(policy, pairs, ref_logps, config, tokenizer, batch_size, prefix, backend) -> dict:
    """The pair-weighted sums of the evaluation metrics over `pairs` ({} for none)."""
    rows = []
    with backend.no_grad():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            batch = collate(chunk, tokenizer, config.max_len, config)
            forward = policy_forward(policy, batch, config)
            ref = backend.tensor(np.asarray(ref_logps[start:start + len(chunk)], dtype=np.float64))
            pc, pr = batch.chosen_rejected(forward.logps)
            output = dpo_loss(pc, pr, ref[:, 0], ref[:, 1], **_loss_kwargs(config, backend, batch, None))
            metrics = preference_metrics(output, pc, pr, backend, prefix)
            if forward.wpo_weights is not None:
                weighted = backend.to_numpy(output.losses).astype(np.float64) * forward.wpo_weights
                metrics[f"{prefix}loss"] = float(weighted.mean())
            metrics[f"{prefix}logits/chosen"] = forward.logits_chosen
            metrics[f"{prefix}logits/rejected"] = forward.logits_rejected
            rows.append((len(chunk), metrics))
    return {k: sum(n * m[k] for n, m in rows) for k in rows[0][1]} if rows else {}


def _reference_log_probs(reference, pairs, tokenizer, config, dist):
    """`reference_log_probs` of `pairs`, each rank computing its contiguous share, gathered."""
    if not dist.active:
        return reference_log_probs(reference, pairs, tokenizer, config.max_len, config=config)
    start, stop = dist.bounds(len(pairs))
    mine = reference_log_probs(reference, pairs[start:stop], tokenizer, config.max_len, config=config) \
        if stop > start else np.zeros((0, 2))
    return dist.gather_rows(mine)


def _sync_reference(policy, reference, pairs, eval_pairs, tokenizer, config, dist=SINGLE):
    """TR-DPO: mix the policy into the reference, then recompute the cached reference
    log-probs, which the new reference weights invalidate. Returns (train, eval) caches."""
    mix_reference(policy, reference, config.ref_model_mixup_alpha)
    train_cache = _reference_log_probs(reference, pairs, tokenizer, config, dist)
    eval_cache = _reference_log_probs(reference, eval_pairs, tokenizer, config, dist) if eval_pairs else None
    return train_cache, eval_cache


def _reference_cache(reference, pairs, tokenizer, config, out_dir, name, dist=SINGLE):
    """The reference's (n, 2) log-probs of `pairs`: from out_dir when config.precompute_ref_log_probs
    and the fingerprint matches (dpo.ref_cache), else computed (and then stored, when opted in).
    Data-parallel: computed sharded and gathered on every start; rank 0 stores them when opted in."""
    def compute():
        return reference_log_probs(reference, pairs, tokenizer, config.max_len, config=config)

    if dist.active:
        gathered = _reference_log_probs(reference, pairs, tokenizer, config, dist)
        if config.precompute_ref_log_probs and out_dir and dist.is_main:
            ref_logps_cache.load_or_compute(out_dir, name, ref_logps_cache.fingerprint(reference, pairs, tokenizer,
                                                                                       config), lambda: gathered)
        return gathered
    if not (config.precompute_ref_log_probs and out_dir):
        return compute()
    prints = ref_logps_cache.fingerprint(reference, pairs, tokenizer, config)
    return ref_logps_cache.load_or_compute(out_dir, name, prints, compute)


# Fields that may change between a run and its resumption: they do not alter the steps already taken.
RESUMABLE_CHANGES = ("epochs", "max_steps", "log_every", "checkpoint_every", "sft_steps", "sft_lr", "save_total_limit",
                     "divergence_logp_factor", "divergence_grad_factor", "divergence_sft_factor",
                     "precompute_ref_log_probs")


def config_changes(saved: dict, config: DPOConfig) -> str | None:
    """'batch_size 4 -> 3, ...' for the fields of `config` that differ from the `saved`
    config dict and would change the steps already taken; None if there are none."""
    now = json.loads(json.dumps(config.to_dict()))  # tuples -> lists, as stored
    defaults = json.loads(json.dumps(DPOConfig().to_dict()))  # a field the checkpoint predates had its default
    changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k, defaults[k]) != now[k])
    return ", ".join(f"{k} {saved.get(k, defaults[k])!r} -> {now[k]!r}" for k in changed) or None


def _check_resume(checkpoint, config: DPOConfig, policy, reference):
    changes = config_changes(checkpoint.config, config)
    if changes:
        raise ValueError(f"train_dpo: cannot resume from {checkpoint.path}: the config differs ({changes}); "
                         "resume with the config it was written with")
    difference = architecture_difference(checkpoint.architecture, architecture_of(policy))
    if difference:
        raise ValueError(f"train_dpo: cannot resume from {checkpoint.path}: its architecture differs from the "
                         f"model's ({difference})")
    if checkpoint.reference and checkpoint.reference != weights_fingerprint(reference.export_weights()):
        raise ValueError(f"train_dpo: cannot resume from {checkpoint.path}: it was trained against another "
                         "reference (the weights' fingerprints differ)")


def train_dpo(policy, reference, pairs, config: DPOConfig | None = None, tokenizer=None, out_dir=None,
              eval_pairs=None, resume_from=None, on_log=None, dist=None) -> TrainResult:
    """Train `policy` with DPO against the frozen `reference` on `pairs`.

    config.optim at config.lr (weight_decay), config.lr_scheduler_type with its warm-up,
    clipping at config.max_grad_norm, config.batch_size pairs per micro-batch and
    config.gradient_accumulation_steps micro-batches per update, config.epochs epochs
    (or config.max_steps), seeded shuffling; ld_alpha, use_weighting, sync_ref_model
    and bf16 as in TRL (see `dpo.train_options`). Held-out pairs: `eval_pairs`, or
    config.eval_fraction of `pairs`. With `out_dir`: metrics to out_dir/metrics.jsonl
    and a checkpoint folder out_dir/checkpoint-<step>/ (see `dpo/checkpoint.py`) every
    config.checkpoint_every steps and at the end, at most config.save_total_limit of
    them kept. `resume_from` continues from such a checkpoint (same data, same config)
    and reaches the same result as an uninterrupted run. `on_log(row)` sees every
    metrics row. A non-finite loss, or a divergence as `dpo/divergence.py` defines it,
    raises TrainingDiverged naming the step; the last checkpoint written stays as it
    was. A LoRA policy (see build_models) trains only its adapters and, with `out_dir`,
    also writes them to out_dir/adapter in PEFT's format. A signal caught by
    `interrupts.saving_on_interrupt` ends the run after the current step with a
    checkpoint and interrupts.RunInterrupted.

    `dist` (dpo.distributed.Distributed, from torchrun): data-parallel training, each rank on
    its share of every global batch, the same updates as one process (see dpo/distributed.py);
    only rank 0 writes files.
    """
    config = config or DPOConfig()
    dist = dist or SINGLE
    if dist.active and "bco_pair" in np.atleast_1d(config.loss_type):
        raise ValueError("train_dpo: loss_type bco_pair keeps a running mean of this process's rewards; "
                         "it is not supported under torchrun with more than one process")
    if dist.fsdp and config.sync_ref_model:
        raise ValueError("train_dpo: sync_ref_model mixes the policy's whole weights into the reference every "
                         "few steps; it is not supported with --fsdp")
    backend = type(policy).backend
    if type(reference).backend is not backend:
        raise ValueError(f"train_dpo: policy is on {backend} but reference is on {type(reference).backend}")
    tokenizer = tokenizer or InstructionTokenizer()
    pairs = list(pairs)
    if eval_pairs is None and config.eval_fraction > 0:
        pairs, eval_pairs = split_train_eval(pairs, config.eval_fraction, config.seed)
    eval_pairs = list(eval_pairs or [])
    if not pairs:
        raise ValueError("train_dpo: no training pairs")

    with precision(backend, config):  # the backend refuses bf16 here, before any work, where it has none
        pass
    ref_cache = _reference_cache(reference, pairs, tokenizer, config, out_dir, "train", dist)
    pairs_per_update = config.batch_size * config.gradient_accumulation_steps
    steps_per_epoch = math.ceil(len(pairs) / pairs_per_update)
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    policy.train()
    checkpoint = load_checkpoint(resume_from) if resume_from is not None else None
    if checkpoint is not None:
        _check_resume(checkpoint, config, policy, reference)
        policy.load_weights(checkpoint.weights)
    model = dist.wrap(policy)  # forward and backward go through it (DDP: gradients all-reduced; FSDP: sharded)
    # after wrap: FSDP2 replaces the parameters; with LoRA only the adapters are trainable
    optimizer = make_optimizer(backend, trainable_parameters(policy), config)
    scheduler = make_scheduler(backend, optimizer, config, total_steps)
    bco_state = RunningMean() if "bco_pair" in np.atleast_1d(config.loss_type) else None

    step = 0
    metrics_path = os.path.join(out_dir, "metrics.jsonl") if out_dir and dist.is_main else None
    reference_fingerprint = weights_fingerprint(reference.export_weights())
    monitor = DivergenceMonitor.from_config(config, policy.config.vocab_size)
    earlier_log = []
    if checkpoint is not None:
        checkpoint.restore_training_state(optimizer, scheduler, backend)
        dist.shard_optimizer_state(optimizer)
        step = checkpoint.step
        earlier_log = [row for row in checkpoint.log_history if row.get("step", 0) <= step]
        if bco_state is not None and "bco_state" in checkpoint.extra:
            bco_state.load_state_dict(checkpoint.extra["bco_state"])
        monitor.norms.extend(checkpoint.extra.get("grad_norms", []))
    start_step = step
    # a resumed run's log is the checkpoint's log_history; rows logged after the checkpoint are redone
    log = MetricsLog(metrics_path)
    for row in earlier_log:
        log.write(row)
    eval_ref_cache = _reference_cache(reference, eval_pairs, tokenizer, config, out_dir, "eval", dist) \
        if eval_pairs else None
    history, written, written_step = [], None, None

    def emit(row):
        log.write(row)
        history.append(row)
        if on_log is not None:
            on_log(row)

    def save():
        nonlocal written, written_step
        if out_dir and written_step != step:
            saved_model, saved_optimizer = dist.full_copies(policy, optimizer)  # FSDP: every rank gathers
            written_step = step
            if not dist.is_main:
                return
            epoch = (step - 1) // steps_per_epoch if step else 0  # the epoch of the last update
            extra = {"bco_state": bco_state.state_dict()} if bco_state is not None else {}
            extra["grad_norms"] = list(monitor.norms)  # the divergence test's window, so a resume sees it too
            moved = config.sync_ref_model  # TR-DPO moved the reference: it goes into the checkpoint, for a resume
            written = save_checkpoint(os.path.join(out_dir, checkpoint_name(step)), saved_model, config,
                                      optimizer=saved_optimizer, scheduler=scheduler, step=step, epoch=epoch,
                                      extra=extra,
                                      reference=weights_fingerprint(reference.export_weights()) if moved
                                      else reference_fingerprint, reference_model=reference if moved else None,
                                      log_history=earlier_log + history, max_steps=total_steps)
            rotate_checkpoints(out_dir, config.save_total_limit)

    def stop_if_interrupted():
        # every rank stops after the same step: a signal seen by any of them stops them all
        if dist.any(interrupts.requested() is not None):
            save()
            raise interrupts.RunInterrupted(interrupts.requested() or signal.SIGTERM, step,
                                            written if written_step == step else None)

    indices = list(range(len(pairs)))
    epoch = step // steps_per_epoch
    if eval_pairs and step and step % steps_per_epoch == 0 and not any(
            row.get("step") == step and "eval_loss" in row for row in earlier_log):
        # the checkpoint ended an epoch and was written before that epoch's evaluation: do it now
        emit({"step": step, "epoch": step / steps_per_epoch,
              **evaluate_pairs(policy, reference, eval_pairs, config, tokenizer, ref_logps=eval_ref_cache,
                               dist=dist)})
    with Progress(total_steps - step, "dpo") as bar:
        while step < total_steps:
            for position, chunk in enumerate(iterate_batches(indices, pairs_per_update, config.seed, epoch=epoch)):
                if epoch * steps_per_epoch + position < step:
                    continue  # done before the checkpoint we resumed from
                parts = micro_batches(list(chunk), config.batch_size)
                shares = [len(part) / len(chunk) for part in parts]
                if dist.active:  # this rank's shard of each global micro-batch (a zero-weight row when empty)
                    lengths = [collate([pairs[i] for i in part], tokenizer, config.max_len, config)
                               for part in parts]
                    shares = [len(dist.shard(part)) / len(chunk) for part in parts]
                    parts = [dist.shard(part) or part[:1] for part in parts]
                batches = [collate([pairs[i] for i in part], tokenizer, config.max_len, config)
                           for part in parts]
                if not dist.active:
                    lengths = batches
                try:
                    metrics = dpo_step(model, batches, [ref_cache[part] for part in parts], optimizer, config,
                                       scheduler, bco_state, step=step + 1, dist=dist, shares=shares)
                    monitor.dpo(step + 1, metrics, np.concatenate([b.chosen_rejected(b.completion_lengths)[0]
                                                                   for b in lengths]))
                except TrainingDiverged as error:
                    if written is None:
                        raise
                    raise TrainingDiverged(f"{error}; the last checkpoint, {written} (step {written_step}), "
                                           "is intact") from None
                step += 1
                if config.sync_ref_model and step % config.ref_model_sync_steps == 0:
                    ref_cache, eval_ref_cache = _sync_reference(policy, reference, pairs, eval_pairs, tokenizer,
                                                                config, dist)
                if step % config.log_every == 0 or step == total_steps:
                    bar.clear()
                    layout = {"world_size": dist.world_size, "per_rank_batch_size": dist.per_rank(config.batch_size)} \
                        if dist.active and not history else {}  # the run's first row states the layout
                    emit({"step": step, "epoch": step / steps_per_epoch, **metrics, **layout})
                bar.update(loss=metrics["loss"])
                if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total_steps:
                    save()
                if step >= total_steps:
                    break
                stop_if_interrupted()
            if eval_pairs:
                bar.clear()
                emit({"step": step, "epoch": step / steps_per_epoch,
                      **evaluate_pairs(policy, reference, eval_pairs, config, tokenizer, ref_logps=eval_ref_cache,
                               dist=dist)})
            epoch += 1
    if step > start_step or resume_from is None:
        save()
    stop_if_interrupted()  # a signal during the last step: the run is complete and saved, but stopped as asked
    if out_dir and dist.is_main and has_lora(policy):
        save_adapter(policy, os.path.join(out_dir, "adapter"))  # PEFT's format, beside the checkpoint
    truncated = count_truncated(pairs + eval_pairs, tokenizer, config.max_len, config)
    return TrainResult(history, step, pairs, eval_pairs, written, truncated, start_step, total_steps)

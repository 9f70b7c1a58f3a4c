"""Stopping a run that has diverged while its numbers are still finite.

Three tests, each with a DPOConfig field as its threshold (0 turns it off):

- `divergence_logp_factor` (DPO): the policy's mean per-token log-prob of the chosen
  completions falls below `factor * -log V`, V the vocabulary size. `-log V` is what a
  uniform distribution gives every token; a model far below it has thrown away what
  it knew (a learning rate of 1000 drives it to about -1e8 while the DPO loss reads 0).
- `divergence_grad_factor` (DPO): the gradient norm, before clipping, exceeds `factor`
  times the median of the last `GRAD_WINDOW` norms (checked once `GRAD_MIN_HISTORY`
  norms are known).
- `divergence_sft_factor` (SFT): the loss exceeds `factor` times the first step's loss.

Non-finite values are caught where they arise (`training.dpo_loss_on_batch`,
`training.dpo_step`), before the weights are updated.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

GRAD_WINDOW = 20
GRAD_MIN_HISTORY = 5


class TrainingDiverged(RuntimeError):
    """Training stopped because a loss, a log-prob or the gradient norm became non-finite or
    clearly diverged; the message names the step and the quantity."""


class DivergenceMonitor:
    """Feed it every step's numbers; it raises TrainingDiverged the first time a threshold is crossed."""

    def __init__(self, logp_factor=0.0, grad_factor=0.0, sft_factor=0.0, vocab_size: int = 1):
        self.logp_factor, self.grad_factor, self.sft_factor = logp_factor, grad_factor, sft_factor
        self.uniform = -math.log(vocab_size)
        self.norms = deque(maxlen=GRAD_WINDOW)
        self.first_sft_loss = None

    @classmethod
    def from_config(cls, config, vocab_size: int) -> DivergenceMonitor:
        """The DPO tests with a DPOConfig's thresholds."""
        return cls(config.divergence_logp_factor, config.divergence_grad_factor, config.divergence_sft_factor,
                   vocab_size)

    @classmethod
    def for_sft(cls, factor: float) -> DivergenceMonitor:
        return cls(sft_factor=factor)

    def dpo(self, step: int, metrics: dict, chosen_tokens) -> None:
        """`metrics`: the step's metrics (logps/chosen: the batch mean of summed log-probs;
        grad_norm); `chosen_tokens`: the chosen completions' token counts."""
        if self.logp_factor:
            per_token = metrics["logps/chosen"] / max(float(np.mean(chosen_tokens)), 1.0)
            if per_token < self.logp_factor * self.uniform:
                raise TrainingDiverged(
                    f"the run diverged at DPO step {step}: the policy's mean log-prob per chosen token is "
                    f"{per_token:.4g}, far below a uniform distribution's {self.uniform:.3f} (limit "
                    f"{self.logp_factor:g}x that: DPOConfig.divergence_logp_factor); lower the learning rate")
        grad_norm = metrics.get("grad_norm")
        if self.grad_factor and grad_norm is not None:
            if len(self.norms) >= GRAD_MIN_HISTORY:
                median = float(np.median(self.norms))
                if median > 0 and grad_norm > self.grad_factor * median:
                    raise TrainingDiverged(
                        f"the run diverged at DPO step {step}: the gradient norm {grad_norm:.4g} is "
                        f"{grad_norm / median:.3g}x the median of the last {len(self.norms)} steps ({median:.4g}; "
                        f"limit {self.grad_factor:g}x: DPOConfig.divergence_grad_factor); lower the learning rate")
            self.norms.append(float(grad_norm))

    def sft(self, step: int, loss: float) -> None:
        if self.first_sft_loss is None:
            self.first_sft_loss = loss
            return
        if self.sft_factor and self.first_sft_loss > 0 and loss > self.sft_factor * self.first_sft_loss:
            raise TrainingDiverged(
                f"the run diverged at SFT step {step}: the loss rose to {loss:.4g}, "
                f"{loss / self.first_sft_loss:.3g}x its start ({self.first_sft_loss:.4g}; limit "
                f"{self.sft_factor:g}x: DPOConfig.divergence_sft_factor); lower the SFT learning rate")

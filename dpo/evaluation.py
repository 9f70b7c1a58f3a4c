"""Per-pair margins of a policy against its reference, and the table the demo prints."""

from __future__ import annotations

import dataclasses

import numpy as np

from .batching import collate
from .config import DPOConfig
from .logprobs import sequence_log_prob
from .losses import dpo_loss
from .tokenizer import InstructionTokenizer
from .train_options import policy_forward, reference_forward_logps


@dataclasses.dataclass(frozen=True)
class PairMargin:
    """One pair's log-probs under policy and reference, its implicit rewards and margin."""

    prompt: str
    policy_chosen: float
    policy_rejected: float
    reference_chosen: float
    reference_rejected: float
    chosen_reward: float
    rejected_reward: float

    @property
    def margin(self) -> float:
        return self.chosen_reward - self.rejected_reward


def evaluate_margins(policy, reference, pairs, config: DPOConfig | None = None, tokenizer=None,
                     batch_size: int = 32) -> list:
    """A PairMargin per pair: rewards as `dpo_loss` defines them for config.loss_type
    (β·(policy − reference) log-prob for the reference-based types); with config.ld_alpha
    the log-probs are LD-DPO's weighted sums, as in training."""
    config = config or DPOConfig()
    tokenizer = tokenizer or InstructionTokenizer()
    backend = type(policy).backend
    pairs = list(pairs)
    out = []
    with backend.no_grad():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            batch = collate(chunk, tokenizer, config.max_len, config)
            if config.ld_alpha is None:
                pc, pr = batch.chosen_rejected(sequence_log_prob(policy, batch).logps)
                rc, rr = batch.chosen_rejected(sequence_log_prob(reference, batch).logps)
            else:  # LD-DPO's weighted log-probs, as training saw them
                pc, pr = batch.chosen_rejected(policy_forward(policy, batch, config).logps)
                rc, rr = batch.chosen_rejected(backend.tensor(reference_forward_logps(reference, batch, config)))
            cl, rl = batch.chosen_rejected(batch.completion_lengths)
            result = dpo_loss(pc, pr, rc, rr, beta=config.beta, loss_type=config.loss_type,
                              label_smoothing=config.label_smoothing, loss_weights=config.loss_weights,
                              chosen_lengths=cl, rejected_lengths=rl, backend=backend, **config.loss_options)
            columns = [backend.to_numpy(t).astype(np.float64) for t in
                       (pc, pr, rc, rr, result.chosen_rewards, result.rejected_rewards)]
            for i, pair in enumerate(chunk):
                out.append(PairMargin(pair.prompt_text, *(float(c[i]) for c in columns)))
    return out


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def margin_table(margins, before=None, width: int = 30) -> str:
    """A fixed-width text table: prompt, chosen and rejected log-prob, reward margin
    (and the margin `before` training, when given), with a mean row."""
    header = f"{'prompt':<{width}}  {'logp chosen':>11}  {'logp rejected':>13}  {'margin':>8}"
    if before is not None:
        header += f"  {'before':>8}"
    lines = [header, "-" * len(header)]
    for i, m in enumerate(margins):
        line = f"{_clip(m.prompt, width):<{width}}  {m.policy_chosen:>11.3f}  {m.policy_rejected:>13.3f}"
        line += f"  {m.margin:>8.4f}"
        if before is not None:
            line += f"  {before[i].margin:>8.4f}"
        lines.append(line)
    lines.append("-" * len(header))
    mean = f"{'mean':<{width}}  {np.mean([m.policy_chosen for m in margins]):>11.3f}  "
    mean += f"{np.mean([m.policy_rejected for m in margins]):>13.3f}  {np.mean([m.margin for m in margins]):>8.4f}"
    if before is not None:
        mean += f"  {np.mean([m.margin for m in before]):>8.4f}"
    lines.append(mean)
    return "\n".join(lines)
